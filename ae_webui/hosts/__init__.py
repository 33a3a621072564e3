"""The host seam: what differs between the WebUIs this extension runs in, behind one small interface.

`current()` picks the adapter once, by what the host's modules expose (not by names or version strings): a
`backend.patcher.unet` package means Forge's own UNet/patcher stack (Forge, Forge Neo) and `ForgeHost`;
otherwise `A1111Host` serves (A1111, and Forge Classic and reForge, whose `sd_model.model.diffusion_model` and
text wrappers follow A1111). What differs inside a family is answered by probing the objects themselves:
autograd (ae_lib.autograd: inference tensors, in-place residual adds), the text engine (base.find_text_engine),
UNet patcher options (base.patcher_problem), the prompt-schedule signature (ae_webui.tokenize) and infotext
serialisation (ae_webui.state.freeze_infotext). Everything else in ae_webui calls the returned object and imports
no host-only module itself.
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
