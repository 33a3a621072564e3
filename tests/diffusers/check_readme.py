"""The README's diffusers example runs as written (on the tiny SD1 pipeline, named by AE_MODEL)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from check_glue import ROOT, WORK


def test_readme_diffusers_example_runs():
    readme = (ROOT / "README.md").read_text()
    (example,) = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "attend_and_excite(" in b]
    env = {**os.environ, "AE_MODEL": str(WORK / "sd1"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", example], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-4000:]
    scores = out.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\[\[0\.\d+, 0\.\d+\]\]", scores), scores
