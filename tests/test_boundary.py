"""ae_lib is host-free: importing all of it pulls in no WebUI, gradio or model-tree module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ae_lib_imports_nothing_from_the_host():
    modules = sorted(p.stem for p in (ROOT / "ae_lib").glob("*.py") if p.stem != "__init__")
    code = (
        "import sys; sys.path[:] = [p for p in sys.path if 'webui_stub' not in p]\n"
        + "".join(f"import ae_lib.{m}\n" for m in modules)
        + "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('modules', 'gradio', 'ldm', 'sgm', 'k_diffusion', 'backend', 'ldm_patched')]\n"
        "print(bad); raise SystemExit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(modules) >= 8
