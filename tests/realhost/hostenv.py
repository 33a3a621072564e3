"""Real WebUI hosts for tests: their source (no network), their own cached venvs, a working copy per session.

The source of each host is a setting: an environment variable naming a folder or a tarball, defaulting to the
unmodified snapshots in `../shared/hosts/` (see its SOURCES.md). Elsewhere point it at a `git clone` of the same
commit (with `repositories/` filled as the host's own launcher fills it). Nothing of the host is committed here.

The venvs live in a cache folder (`AE_HOST_CACHE`, default `~/.cache/sd-webui-ae`) keyed by what they were
built from and how, so a second run reuses them; the project's `.venv` is never touched. They are installed with
uv (a pinned copy that this module pip-installs into the cache), whose package cache sits beside them on the same
filesystem: every venv hard-links the same files (torch and its ~4 GB of CUDA wheels are on disk once). uv is given
pip's own settings (indexes, find-links, constraints, certificate), so it resolves what pip would.
`AE_HOST_INSTALLER=pip` builds with pip instead (a full copy per venv), e.g. to compare.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED_HOSTS = ROOT.parent / "shared" / "hosts"
CACHE = Path(os.environ.get("AE_HOST_CACHE", Path.home() / ".cache" / "sd-webui-ae"))
# torch 2.13.0 cannot import torchvision; these two can (SOURCES.md). setuptools: >= 77 for torch, < 81 for
# pkg_resources, which the WebUIs, pytorch_lightning and CLIP still import.
TORCH = ("torch==2.14.1", "torchvision==0.29.1", "setuptools>=77,<81")
UV = "0.13.9"  # the uv release that installs the venvs (pip-installed into the cache, CACHE/tools)
INSTALLER = os.environ.get("AE_HOST_INSTALLER", "uv")  # "uv" (hard links to one copy) or "pip" (a copy each)


@dataclass(frozen=True)
class HostKind:
    name: str  # "a1111", "forge", "classic", "neo" or "comfyui"
    env_var: str  # names a folder or a tarball of the source
    default_tarball: str
    top: str  # the host's folder inside the tarball
    extra_requirements: tuple[str, ...] = ()
    requirements_file: str = "requirements_versions.txt"
    pre_requirements: tuple[str, ...] = ()  # installed first, in their own pip command
    entry: str = "launch.py"  # the file that marks the host's folder
    # A host whose install is not "requirements file + our torch pins": the pip install argument lists, in order
    # (one install command each), from the unpacked source folder. Replaces pre_requirements/requirements_file.
    install_steps: Callable[[Path], list[list[str]]] | None = None


A1111 = HostKind("a1111", "AE_A1111_SRC", "a1111-v1.10.1-src.tar.gz", "webui")
# joblib: missing from Forge's requirements, the built-in soft-inpainting extension needs it (SOURCES.md).
FORGE = HostKind("forge", "AE_FORGE_SRC", "forge-dfdcbab6-src.tar.gz", "forge", ("joblib",))
CLASSIC = HostKind("classic", "AE_CLASSIC_SRC", "classic-1f95d717-src.tar.gz", "classic",
                   requirements_file="requirements.txt")
# Neo's launcher installs gradio 4.40 (not in requirements.txt) before the rest; in one pip command gradio and
# Pillow==12.2.0 cannot resolve, in this order pip only warns (SOURCES.md).
NEO = HostKind("neo", "AE_NEO_SRC", "neo-exo101-f95f632-src.tar.gz", "neo", requirements_file="requirements.txt",
               pre_requirements=("gradio==4.40.0", "gradio_rangeslider==0.0.8", "packaging==26.0"))
# requests: imported by app/frontend_management.py, not listed (SOURCES.md).
COMFYUI = HostKind("comfyui", "AE_COMFYUI_SRC", "comfyui-a125cd84-src.tar.gz", "comfyui-a125cd84", ("requests",),
                   requirements_file="requirements.txt", entry="main.py")


def sdnext_steps(top: Path) -> list[list[str]]:
    """SD.Next's own installer (installer.py) as pip commands, offline-able (SOURCES.md): torch first;
    requirements.txt (minus setuptools and lint tools) under constraints.txt, plus what installer.py installs
    itself, with PyPI diffusers/transformers standing in for its git-commit pins; gradio without its pinned
    dependencies; last and alone setuptools 69.5.1 (ensure_base_requirements reinstalls it at every start
    otherwise, and torch's setuptools>=77 forbids sharing a command)."""
    skip = {"setuptools", "ruff", "pylint", "pre-commit"}
    reqs = [r for r in _requirement_lines(top / "requirements.txt") if _req_name(r) not in skip]
    own = ["diffusers==0.39.0", "transformers==5.13.0", "tokenizers==0.22.2", "pydantic==2.13.4", "scipy==1.14.1",
           "opencv-python-headless==4.13.0.92", "aiofiles", "ffmpy", "pydub", "uvicorn", "semantic-version",
           "altair", "python-multipart", "matplotlib", "importlib-resources", "jinja2", "markupsafe"]
    return [
        [*TORCH, "wheel"],
        ["-c", str(top / "constraints.txt"), *reqs, *own, *TORCH],
        ["--no-deps", "gradio==3.43.2", "gradio-client==0.5.0", "compel==2.4.0"],
        ["setuptools==69.5.1"],
    ]


SDNEXT = HostKind("sdnext", "AE_SDNEXT_SRC", "sdnext-058a7f0-src.tar.gz", "sdnext",
                  requirements_file="requirements.txt", install_steps=sdnext_steps)
KINDS = {k.name: k for k in (A1111, FORGE, CLASSIC, NEO, COMFYUI, SDNEXT)}


class HostUnavailable(RuntimeError):
    """The host source is missing (a skip locally, a failure in CI)."""


@dataclass(frozen=True)
class HostInstall:
    kind: HostKind
    source: Path  # the unpacked host folder (read as a template, never run in place)
    clip: Path | None  # openai/CLIP source (A1111's CLIP_PACKAGE), if shipped beside it
    python: Path  # the host venv's interpreter


def source_location(kind: HostKind) -> Path:
    raw = os.environ.get(kind.env_var)
    path = Path(raw).expanduser() if raw else SHARED_HOSTS / kind.default_tarball
    if not path.exists():
        raise HostUnavailable(f"{kind.name} source not found at {path} (set {kind.env_var} to a folder or tarball)")
    return path


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()[:12]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def _unpack(kind: HostKind, location: Path) -> tuple[Path, Path | None]:
    if location.is_dir():
        top = location if (location / kind.entry).exists() else location / kind.top
        clip = top.parent / "CLIP"
        return top, clip if clip.is_dir() else None
    dest = CACHE / "src" / f"{kind.name}-{_file_digest(location)}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (dest.parent / f"{dest.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _extract(location, dest)
    clip = dest / "CLIP"
    return dest / kind.top, clip if clip.is_dir() else None


def _extract(location: Path, dest: Path) -> None:
    if not (dest / ".complete").exists():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        with tarfile.open(location) as tar:
            tar.extractall(dest, filter="data")
        (dest / ".complete").touch()


def _req_name(req: str) -> str:
    return re.split(r"[=<>!~\[;\s]", req, maxsplit=1)[0].lower()


def _requirement_lines(path: Path) -> list[str]:
    return [req for req in (line.split("#")[0].strip() for line in path.read_text().splitlines()) if req]


def _requirements(top: Path, kind: HostKind) -> list[str]:
    """The host's pinned requirements, minus the lines our torch pins replace."""
    lines = _requirement_lines(top / kind.requirements_file)
    keep = [req for req in lines if _req_name(req) not in {"torch", "setuptools"}]
    return keep + list(kind.extra_requirements)


def install_commands(top: Path, kind: HostKind, reqs: list[str], clip: Path | None) -> list[list[str]]:
    """What goes into the venv: install argument lists, one command each, in order. Each is what follows
    `pip install` (requirements, and options pip and `uv pip install` share: --no-deps, --no-build-isolation,
    -c FILE, -r FILE)."""
    if kind.install_steps is not None:
        return kind.install_steps(top)
    steps = [list(TORCH)]
    if kind.pre_requirements:
        steps.append([*kind.pre_requirements, *TORCH])
    steps.append([*reqs, *TORCH])
    if clip is not None:
        steps.append(["--no-build-isolation", "--no-deps", str(clip)])
    return steps


def _python311() -> str:
    found = shutil.which("python3.11")
    return found or sys.executable


def _python_version() -> str:
    out = subprocess.run([_python311(), "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def _run(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    started = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT,
                             env={**os.environ, "PIP_NO_INPUT": "1", **(env or {})})
        out.write(f"(rc {rc}, {time.monotonic() - started:.0f} s)\n")
    if rc != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise RuntimeError(f"host venv build failed (rc {rc}): {' '.join(cmd)}\n{tail}")


def _uv() -> Path:
    """The pinned uv, pip-installed once into the cache (CI's machine has nothing installed by hand)."""
    dest = CACHE / "tools" / f"uv-{UV}"
    exe = dest / "bin" / "uv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with (dest.parent / f"{dest.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not exe.exists():
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            log = dest.with_name(dest.name + ".log")
            log.write_text(f"installing uv {UV}\n")
            _run([_python311(), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                  "--target", str(tmp), f"uv=={UV}"], log)
            shutil.rmtree(dest, ignore_errors=True)  # a copy without its executable
            tmp.rename(dest)
    return exe


def _pip_config() -> dict[str, str]:
    """pip's settings as this machine gives them (environment over config files, `install.` over `global.`)."""
    out = subprocess.run([_python311(), "-m", "pip", "config", "list"], capture_output=True, text=True, check=False)
    found: dict[str, dict[str, str]] = {}
    for line in out.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            section, _, key = name.rpartition(".")
            found.setdefault(key, {})[section] = value.strip().strip("'\"")
    return {key: next(v for s in (":env:", "install", "global") if (v := by.get(s)) is not None)
            for key, by in found.items() if by.keys() & {":env:", "install", "global"}}


def _uv_settings() -> tuple[list[str], dict[str, str]]:
    """pip's indexes, find-links, constraints and certificate as uv flags and environment (uv reads no pip.conf).

    pip takes each package's best version from all its indexes; uv's default is the first index that has the
    package, so `unsafe-best-match` is what makes the two resolve alike.
    """
    conf = _pip_config()
    flags = ["--no-config", "--link-mode", "hardlink", "--index-strategy", "unsafe-best-match"]
    if "index-url" in conf:
        flags += ["--index-url", conf["index-url"]]
    for option in ("extra-index-url", "find-links", "constraint"):
        for value in conf.get(option, "").split():
            flags += [f"--{option}", value]
    if conf.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        flags.append("--no-index")
    env = {"UV_CACHE_DIR": str(CACHE / "uv"), "UV_NO_PROGRESS": "1"}  # on the venvs' filesystem: hard links
    if "cert" in conf and "SSL_CERT_FILE" not in os.environ:
        env["SSL_CERT_FILE"] = conf["cert"]
    if "timeout" in conf or "default-timeout" in conf:
        env["UV_HTTP_TIMEOUT"] = conf.get("timeout") or conf["default-timeout"]
    return flags, env


def _ensurepip_wheels() -> list[str]:
    """The pip and setuptools wheels that `python -m venv` would install (they ship with the interpreter)."""
    code = "import ensurepip, pathlib; print(*sorted(pathlib.Path(ensurepip.__file__).parent.glob('_bundled/*.whl')))"
    out = subprocess.run([_python311(), "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def _installer_tag() -> str:
    if INSTALLER not in ("uv", "pip"):
        raise ValueError(f"AE_HOST_INSTALLER={INSTALLER!r}: use 'uv' or 'pip'")
    return f"uv-{UV}" if INSTALLER == "uv" else "pip"


def _build_venv(venv: Path, steps: list[list[str]]) -> None:
    """Built in place (a venv is not relocatable); `.complete` marks it usable, a half-built one is redone."""
    log = venv.with_name(venv.name + ".log")
    log.write_text(f"building {venv} with {_installer_tag()}\n")
    started = time.monotonic()
    python = venv / "bin" / "python"
    if INSTALLER == "pip":
        _run([_python311(), "-m", "venv", str(venv)], log)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        for step in steps:
            _run([*pip, *step], log)
    else:
        # The same venv as `python -m venv` gives (pip and setuptools from ensurepip's own wheels), but linked
        # by uv: ensurepip compiles every file of pip, ~20 s on a busy 2-core machine.
        _run([_python311(), "-m", "venv", "--without-pip", str(venv)], log)
        flags, env = _uv_settings()
        uv = [str(_uv()), "pip", "install", "--python", str(python)]
        _run([*uv, "--no-config", "--link-mode", "hardlink", "--no-index", "--no-deps", *_ensurepip_wheels()],
             log, env)
        for step in steps:
            _run([*uv, *flags, *step], log, env)
        _unshare(venv)
    (venv / ".complete").write_text(f"{time.monotonic() - started:.0f}\n")


# Installed files a host rewrites in place when it runs: gradio 4 regenerates a custom component's .pyi stub at
# import (gradio_rangeslider under Neo). Written through a hard link, that would change uv's cache and every venv
# sharing the file, so these get a copy of their own (~6 MB a venv).
PRIVATE = ("*.pyi",)


def _unshare(venv: Path) -> None:
    for pattern in PRIVATE:
        for path in venv.rglob(pattern):
            if path.is_file() and not path.is_symlink() and path.stat().st_nlink > 1:
                copy = path.with_name(path.name + ".ae-copy")
                shutil.copy2(path, copy)
                copy.replace(path)


def _identity(arg: str) -> str:
    """A step argument as it goes into the venv key: a file by its content, not by where it lies."""
    path = Path(arg)
    if os.sep in arg and path.is_file():
        return f"{path.name}@{_file_digest(path)}"
    return path.name if os.sep in arg and path.is_dir() else arg


def venv_dir(name: str, steps: list[list[str]]) -> Path:
    recipe = [" ".join(_identity(a) for a in step) for step in steps]
    key = _digest("\n".join([*recipe, _python_version(), _installer_tag()]).encode())
    return CACHE / "venv" / f"{name}-{key}"


def ensure_venv(name: str, steps: list[list[str]]) -> Path:
    """A venv in the cache made by these install steps (see install_commands), built once; its python.

    Keyed by what goes in and how (uv's hard-linked venvs are not pip's), not by where the interpreter was found
    (a venv's python3.11 is the same Python) nor by where the cache lies (a file in a step counts by content).
    """
    venv = venv_dir(name, steps)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; a waiting one then finds it complete
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            _build_venv(venv, steps)
    return venv / "bin" / "python"


def ensure(kind_name: str) -> HostInstall:
    """The host's source unpacked and its venv built (both cached); raises HostUnavailable without source."""
    kind = KINDS[kind_name]
    top, clip = _unpack(kind, source_location(kind))
    python = ensure_venv(kind.name, install_commands(top, kind, _requirements(top, kind), clip))
    return HostInstall(kind, top, clip, python)


def build_seconds(install: HostInstall) -> str:
    marker = install.python.parent.parent / ".complete"
    return marker.read_text().strip() if marker.exists() else "?"


def disk_usage() -> str:
    """The venvs and uv's cache together, hard links counted once (what the host cache costs on disk)."""
    parts = [str(p) for p in (CACHE / "venv", CACHE / "uv") if p.exists()]
    if not parts:
        return "0"
    out = subprocess.run(["du", "-sch", *parts], capture_output=True, text=True, check=False)
    return out.stdout.strip().splitlines()[-1].split()[0] if out.stdout.strip() else "?"


def prune(kind_name: str, keep: Path) -> list[Path]:
    """Removes this kind's other venvs (older keys: pip-built copies, old recipes), each under its own lock.
    Only while no test runs on them: a running host's venv is not locked."""
    gone = []
    for venv in sorted((CACHE / "venv").glob(f"{kind_name}-*")):
        suffix = venv.name[len(kind_name) + 1:]
        if venv == keep or not venv.is_dir() or len(suffix) != 12 or not suffix.isalnum():
            continue  # another kind whose name starts the same ("diffusers-current-..."), or not a venv
        with (venv.parent / f"{venv.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            shutil.rmtree(venv)
        for extra in (venv.with_name(venv.name + ".log"), venv.with_name(venv.name + ".lock")):
            extra.unlink(missing_ok=True)
        gone.append(venv)
    return gone


def main(args: list[str]) -> None:
    """python -m tests.realhost.hostenv [--prune] [a1111 forge ...]: build ahead of the tests (all kinds).
    --prune then deletes the other venvs of those kinds (run it when no tests are running)."""
    do_prune = "--prune" in args
    t_all = time.monotonic()
    for name in [a for a in args if a != "--prune"] or list(KINDS):
        t0 = time.monotonic()
        host = ensure(name)
        print(f"{name}: {host.python} (ready in {time.monotonic() - t0:.0f} s, built in {build_seconds(host)} s)",
              flush=True)
        for venv in prune(name, host.python.parent.parent) if do_prune else []:
            print(f"{name}: removed {venv}", flush=True)
    print(f"host venvs ready in {time.monotonic() - t_all:.0f} s with {_installer_tag()}; "
          f"{CACHE / 'venv'} + {CACHE / 'uv'}: {disk_usage()} on disk")


if __name__ == "__main__":
    main(sys.argv[1:])
