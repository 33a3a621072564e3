"""Cached venvs for the diffusers tests: the current diffusers (the glue) and diffusers 0.33.1 (the deprecated
`StableDiffusionAttendAndExcitePipeline`, the end-to-end reference).

Why not the project's .venv: diffusers 0.42 needs huggingface-hub >= 1.32, the .venv pins < 1 for gradio 3.41.
Each recipe is a plain list of requirements installed into a fresh Python 3.11 venv beside the host venvs
(`tests/realhost/hostenv.py`: same cache, same torch pins, same lock-and-`.complete` protocol), keyed by the list.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.realhost.hostenv import CACHE, TORCH, _digest, _python311, _python_version, _run


@dataclass(frozen=True)
class DiffusersEnv:
    name: str
    requirements: tuple[str, ...]


# The current diffusers from PyPI, with the transformers it is tested with; pytest runs the glue tests there.
CURRENT = DiffusersEnv("diffusers-current", ("diffusers==0.42.1", "transformers==5.25.0", "pytest", "einops"))
# The last diffusers with StableDiffusionAttendAndExcitePipeline, with a transformers and hub of its time.
LEGACY = DiffusersEnv("diffusers-0.33.1", ("diffusers==0.33.1", "transformers==4.51.3", "huggingface-hub<1"))
ENVS = {e.name: e for e in (CURRENT, LEGACY)}


def _build(venv: Path, env: DiffusersEnv) -> None:
    log = venv.with_name(venv.name + ".log")
    log.write_text(f"building {venv}\n")
    started = time.monotonic()
    _run([_python311(), "-m", "venv", str(venv)], log)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, *TORCH], log)
    _run([*pip, *env.requirements, *TORCH], log)
    (venv / ".complete").write_text(f"{time.monotonic() - started:.0f}\n")


def ensure(env: DiffusersEnv) -> Path:
    """The env's python, its venv built once (flock-guarded, like the host venvs)."""
    key = _digest("\n".join([*TORCH, *env.requirements, _python_version()]).encode())
    venv = CACHE / "venv" / f"{env.name}-{key}"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            _build(venv, env)
    return venv / "bin" / "python"


def build_seconds(python: Path) -> str:
    marker = python.parent.parent / ".complete"
    return marker.read_text().strip() if marker.exists() else "?"


def run(python: Path, args: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


if __name__ == "__main__":  # python -m tests.diffusers.envs [name ...]: build ahead of the tests
    for name in sys.argv[1:] or list(ENVS):
        t0 = time.monotonic()
        print(f"{name}: {ensure(ENVS[name])} (ready in {time.monotonic() - t0:.0f} s)")
