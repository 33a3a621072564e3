"""Cached venvs for the diffusers tests: the current diffusers (the glue) and diffusers 0.33.1 (the deprecated
`StableDiffusionAttendAndExcitePipeline`, the end-to-end reference).

Why not the project's .venv: diffusers 0.42 needs huggingface-hub >= 1.32, the .venv pins < 1 for gradio 3.41.
Each recipe is a plain list of requirements installed into a fresh Python 3.11 venv beside the host venvs
(`tests/realhost/hostenv.py`'s `ensure_venv`: same cache, same torch pins, uv's hard links), keyed by the list.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.realhost.hostenv import TORCH, ensure_venv


@dataclass(frozen=True)
class DiffusersEnv:
    name: str
    requirements: tuple[str, ...]


# The current diffusers from PyPI, with the transformers it is tested with; pytest runs the glue tests there.
# scipy: LMSDiscreteScheduler imports it.
CURRENT = DiffusersEnv("diffusers-current", ("diffusers==0.42.1", "transformers==5.25.0", "scipy", "pytest", "einops"))
# The last diffusers with StableDiffusionAttendAndExcitePipeline, with a transformers and hub of its time.
LEGACY = DiffusersEnv("diffusers-0.33.1", ("diffusers==0.33.1", "transformers==4.51.3", "huggingface-hub<1"))
ENVS = {e.name: e for e in (CURRENT, LEGACY)}


def ensure(env: DiffusersEnv) -> Path:
    """The env's python, its venv built once by the host venvs' installer (uv, hard-linked wheels; flock-guarded)."""
    return ensure_venv(env.name, [list(TORCH), [*env.requirements, *TORCH]])


def build_seconds(python: Path) -> str:
    marker = python.parent.parent / ".complete"
    return marker.read_text().strip() if marker.exists() else "?"


def run(python: Path, args: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


if __name__ == "__main__":  # python -m tests.diffusers.envs [name ...]: build ahead of the tests
    for name in sys.argv[1:] or list(ENVS):
        t0 = time.monotonic()
        print(f"{name}: {ensure(ENVS[name])} (ready in {time.monotonic() - t0:.0f} s)")
