"""install.py installs nothing; the index entry has what the WebUI's extension index requires."""

from __future__ import annotations

import json
import runpy
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INDEX_TAGS = {"script", "localization", "tab", "dropdown", "ads", "installed", "training", "models", "UI related",
              "prompting", "editing", "manipulations", "online", "animation", "query", "science", "extras"}


def test_install_py_installs_nothing(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(subprocess, "check_call", lambda *a, **k: calls.append(a))
    runpy.run_path(str(ROOT / "install.py"), run_name="__main__")
    assert calls == []
    assert "pip" not in (ROOT / "install.py").read_text().replace("pip-install", "")


def test_index_entry():
    entry = json.loads((ROOT / "index" / "sd-webui-attend-and-excite.json").read_text())
    assert {"name", "url", "description", "tags"} <= entry.keys()
    assert set(entry["tags"]) <= INDEX_TAGS
    assert entry["url"].startswith("https://")


def test_scripts_folder_holds_only_the_script():
    # The WebUI imports every .py directly in scripts/ as a script (modules/scripts.py:list_scripts).
    assert sorted(p.name for p in (ROOT / "scripts").glob("*.py")) == ["attend_and_excite.py"]
