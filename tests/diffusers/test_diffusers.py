"""The diffusers glue, in the current diffusers, against diffusers 0.33.1's StableDiffusionAttendAndExcitePipeline.

Neither runs in the project's .venv (diffusers 0.42 needs huggingface-hub >= 1.32, the .venv pins < 1 for
gradio 3.41): each has its own cached venv (tests/diffusers/envs.py). This test builds the tiny pipelines in the
0.33.1 venv, runs the deprecated pipeline there, then runs tests/diffusers/check_*.py with pytest inside the
current-diffusers venv, which compares and checks the glue.
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest

from tests.diffusers.envs import CURRENT, LEGACY, build_seconds, ensure

pytestmark = pytest.mark.diffusers
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BPE = Path(sysconfig.get_paths()["purelib"]) / "open_clip" / "bpe_simple_vocab_16e6.txt.gz"
KINDS = ("sd1", "sd2", "sdxl")
REFERENCES = (("sd1", "float64", "reference"), ("sd1", "float32", "reference"), ("sd2", "float64", "eot"))


def _run(python: Path, args: list[str], timeout: float = 900) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([str(python), *args], cwd=HERE, env=env, capture_output=True, text=True, timeout=timeout,
                         check=False)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-6000:]}\n{out.stderr[-6000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The tiny pipelines (built by the 0.33.1 venv: both versions load its files) and the reference latents."""
    assert BPE.exists(), f"CLIP's BPE merges not found at {BPE} (open-clip-torch in the .venv)"
    started = time.monotonic()
    legacy = ensure(LEGACY)
    print(f"\n{LEGACY.name} venv: built in {build_seconds(legacy)} s, ready after {time.monotonic() - started:.0f} s")
    folder = tmp_path_factory.mktemp("diffusers")
    for kind in KINDS:
        _run(legacy, ["tiny_pipe.py", kind, str(folder / kind), str(BPE)])
    for kind, dtype, rule in REFERENCES:
        out = folder / f"legacy-{kind}-{dtype}.pt"
        _run(legacy, ["legacy_reference.py", str(folder / kind), str(out), dtype, rule])
    return folder


def test_glue_in_current_diffusers(work):
    started = time.monotonic()
    current = ensure(CURRENT)
    print(f"\n{CURRENT.name} venv: built in {build_seconds(current)} s, ready after {time.monotonic() - started:.0f} s")
    env_args = ["-m", "pytest", "-c", str(HERE / "inner.ini"), "--rootdir", str(HERE), "-q", "-s", str(HERE)]
    os.environ["AE_DIFFUSERS_WORK"] = str(work)
    try:
        out = _run(current, env_args, timeout=1800)
    finally:
        os.environ.pop("AE_DIFFUSERS_WORK", None)
    print("\n".join(line for line in out.splitlines() if line.startswith("AE_FIGURE") or "passed" in line))
