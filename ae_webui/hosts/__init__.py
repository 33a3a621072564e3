"""The host seam: what differs between the WebUIs this extension runs in, behind one small interface.

`current()` detects the host once, by what its modules expose (not by version strings): Forge has
`backend.patcher.unet` (its own UNet/patcher stack); otherwise the A1111 adapter serves (also reForge, whose
`sd_model.model.diffusion_model` and `cond_stage_model` follow A1111). Everything else in ae_webui calls the
returned object and imports no host-only module itself.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache

from ae_webui.hosts.base import Host


def _is_forge() -> bool:
    try:
        return importlib.util.find_spec("backend.patcher.unet") is not None
    except (ImportError, ValueError):  # no `backend` package at all
        return False


@lru_cache(maxsize=1)
def current() -> Host:
    if _is_forge():
        from ae_webui.hosts.forge import ForgeHost

        return ForgeHost()
    from ae_webui.hosts.a1111 import A1111Host

    return A1111Host()
