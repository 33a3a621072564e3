"""The tiny checkpoints each real host loads, built once per builder version by a host's own python."""

from __future__ import annotations

from pathlib import Path

from tests.realhost import hostenv
from tests.realhost.hostenv import CACHE, HostInstall

# Forge Classic and Forge Neo load the Forge test checkpoints as they are (SOURCES.md); Forge's venv builds them
# (its `backend` is the builder's, tests/realhost/checkpoints_forge.py; Classic has no `backend` at all).
FORGE_FAMILY = {"forge", "classic", "neo"}


def ensure(install: HostInstall) -> Path:
    """The folder of checkpoints for this host (passed to it as --ckpt-dir, Neo: --ckpt-dirs; SD.Next: its
    diffusers_dir in config.json)."""
    if install.kind.name == "a1111":
        from tests.realhost.checkpoints import ensure_a1111

        return ensure_a1111(install)
    if install.kind.name == "sdnext":  # diffusers folders; the returned folder is SD.Next's diffusers_dir
        from tests.realhost import models_sdnext

        # SD.Next names a model <basename of diffusers_dir>/<folder>: "Diffusers/..." as in its own models/Diffusers.
        return models_sdnext.build_with(install, CACHE / f"sdnext-models-v{models_sdnext.VERSION}" / "Diffusers")
    if install.kind.name not in FORGE_FAMILY:
        msg = f"no test checkpoints for {install.kind.name}"
        raise ValueError(msg)
    from tests.realhost.checkpoints_forge import VERSION, build_with, file_name

    builder = install if install.kind.name == "forge" else hostenv.ensure("forge")
    dest = CACHE / f"ckpt-forge-v{VERSION}"  # one version per folder: Forge lists (and may pick) every file there
    build_with(builder, dest)
    if install.kind.name != "neo":
        return dest
    # Neo: the same SD1.5 file (linked) and the SDXL layout Neo recognises, in a folder of its own.
    neo = CACHE / f"ckpt-neo-v{VERSION}"
    neo.mkdir(parents=True, exist_ok=True)
    sd15 = neo / file_name("sd15")
    if not sd15.exists():
        tmp = sd15.with_suffix(".link.tmp")
        tmp.unlink(missing_ok=True)
        tmp.hardlink_to(dest / file_name("sd15"))
        tmp.replace(sd15)
    build_with(builder, neo, ("sdxl_full_depth",))
    return neo
