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


def test_pip_install_gives_the_engine_and_the_diffusers_glue(tmp_path):
    """`pip install .` builds a wheel of ae_lib and ae_diffusers only, torch and diffusers as extras."""
    import shutil
    import sys
    import zipfile

    source = tmp_path / "src"  # a copy, so the build's build/ and egg-info never land in the extension folder
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "outputs", "build"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
           str(source)]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"ae_lib", "ae_diffusers"}
    assert {f"ae_lib/{p.name}" for p in (ROOT / "ae_lib").glob("*.py")} <= set(names)
    assert {f"ae_diffusers/{p.name}" for p in (ROOT / "ae_diffusers").glob("*.py")} <= set(names)
    (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    metadata = zipfile.ZipFile(wheel).read(meta).decode()
    assert "Provides-Extra: diffusers" in metadata and "Provides-Extra: torch" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and all("extra ==" in line for line in requires), requires  # nothing installed unasked
    assert any(line.startswith("Requires-Dist: diffusers") for line in requires)
