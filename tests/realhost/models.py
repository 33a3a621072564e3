"""The tiny checkpoints each real host loads, built once per builder version by the host's own python."""

from __future__ import annotations

from pathlib import Path

from tests.realhost.hostenv import CACHE, HostInstall


def ensure(install: HostInstall) -> Path:
    """The folder of checkpoints for this host (passed to it as --ckpt-dir)."""
    if install.kind.name == "a1111":
        from tests.realhost.checkpoints import ensure_a1111

        return ensure_a1111(install)
    from tests.realhost.checkpoints_forge import VERSION, build_with

    dest = CACHE / f"ckpt-forge-v{VERSION}"  # one version per folder: Forge lists (and may pick) every file there
    build_with(install, dest)
    return dest

