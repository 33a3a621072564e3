"""How the host venvs are built: uv given pip's settings, one hard-linked copy of each file, keys that tell apart."""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import zipfile
from pathlib import Path

import pytest

from tests.realhost import hostenv

pytestmark = pytest.mark.realhost


def _pip_env(monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    """Only these pip settings: no config file, no PIP_* from the machine."""
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for key, value in settings.items():
        monkeypatch.setenv(f"PIP_{key.upper()}", value)


def test_uv_gets_pip_indexes_find_links_constraints_and_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    _pip_env(monkeypatch, index_url="https://mirror.example/simple",
             extra_index_url="file:///opt/a/simple file:///opt/b/simple", find_links="/opt/wheels",
             constraint="/etc/c.txt", cert="/etc/ca.pem")
    flags, env = hostenv._uv_settings()
    pairs = list(itertools.pairwise(flags))
    assert ("--index-url", "https://mirror.example/simple") in pairs
    assert ("--extra-index-url", "file:///opt/a/simple") in pairs
    assert ("--extra-index-url", "file:///opt/b/simple") in pairs
    assert ("--find-links", "/opt/wheels") in pairs
    assert ("--constraint", "/etc/c.txt") in pairs
    # pip's best version over all indexes, not uv's first index that has the package
    assert ("--index-strategy", "unsafe-best-match") in pairs
    assert ("--link-mode", "hardlink") in pairs
    assert env["SSL_CERT_FILE"] == "/etc/ca.pem"
    assert Path(env["UV_CACHE_DIR"]).parent == hostenv.CACHE  # on the venvs' filesystem


def test_the_key_tells_installers_and_file_contents_apart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("numpy<2\n")
    steps = [["torch==2.14.1"], ["-c", str(constraints), "numpy"]]
    monkeypatch.setattr(hostenv, "INSTALLER", "uv")
    uv = hostenv.venv_dir("x", steps)
    monkeypatch.setattr(hostenv, "INSTALLER", "pip")
    assert hostenv.venv_dir("x", steps) != uv  # a pip-built venv is never taken for a hard-linked one
    monkeypatch.setattr(hostenv, "INSTALLER", "uv")
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "constraints.txt").write_text("numpy<2\n")
    assert hostenv.venv_dir("x", [["torch==2.14.1"], ["-c", str(moved / "constraints.txt"), "numpy"]]) == uv
    constraints.write_text("numpy<3\n")
    assert hostenv.venv_dir("x", steps) != uv


def _wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel with one 1 MB module."""
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": b"VALUE = 1\n" + b"#" * (1 << 20) + b"\n",
             f"{name}/__init__.pyi": b"VALUE: int\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\n" for path, data in files.items())
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for member, data in files.items():
            whl.writestr(member, data)
        whl.writestr(f"{info}/RECORD", record + f"{info}/RECORD,,\n")
    return path


def test_two_venvs_share_one_copy_of_a_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    uv = hostenv._uv()  # the pinned uv, from the real cache (pip-installed there once)
    cache = tmp_path / "cache"
    (cache / "tools").mkdir(parents=True)
    (cache / "tools" / uv.parent.parent.name).symlink_to(uv.parent.parent)
    monkeypatch.setattr(hostenv, "CACHE", cache)
    monkeypatch.setattr(hostenv, "INSTALLER", "uv")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "ae_tiny", "1.0")
    _pip_env(monkeypatch, no_index="1", find_links=str(wheels))
    one = hostenv.ensure_venv("one", [["ae_tiny==1.0"]])
    two = hostenv.ensure_venv("two", [["ae_tiny==1.0"], ["--no-deps", "ae_tiny==1.0"]])
    found = [next((p.parent.parent).glob("lib/python*/site-packages/ae_tiny/__init__.py")) for p in (one, two)]
    a, b = (f.stat() for f in found)
    assert (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)  # one file on disk, linked into both venvs
    assert a.st_nlink >= 3  # uv's cache holds it too
    assert (one.parent.parent / ".complete").exists() and (two.parent.parent / ".complete").exists()
    # a stub a host may rewrite in place (gradio 4 does) is each venv's own: the shared copy stays as installed
    stubs = [f.with_suffix(".pyi") for f in found]
    assert stubs[0].stat().st_ino != stubs[1].stat().st_ino
    stubs[0].write_text("VALUE: str\n")
    assert stubs[1].read_text() == "VALUE: int\n"


def test_prune_removes_only_the_kinds_other_venvs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(hostenv, "CACHE", tmp_path)
    venvs = tmp_path / "venv"
    names = ["neo-0123456789ab", "neo-ba9876543210", "neo-0123456789ab-x", "neon-0123456789ab", "forge-0123456789ab"]
    for name in names:
        (venvs / name / "bin").mkdir(parents=True)
        (venvs / f"{name}.log").write_text("log\n")
    gone = hostenv.prune("neo", venvs / "neo-ba9876543210")
    assert gone == [venvs / "neo-0123456789ab"]
    assert sorted(p.name for p in venvs.iterdir() if p.is_dir()) == sorted(names[1:])
    assert not (venvs / "neo-0123456789ab.log").exists()
