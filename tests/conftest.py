from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ae_demo.tiny import make_unet

# The WebUI stand-in's `modules`, `k_diffusion` and `open_clip` shims (tests/webui_stub/README.md).
STUB = str(Path(__file__).resolve().parent / "webui_stub")
if STUB not in sys.path:
    sys.path.insert(0, STUB)


@pytest.fixture(scope="session")
def sd1_unet():
    return make_unet("sd1")


@pytest.fixture(scope="session")
def sd2_unet():
    return make_unet("sd2")


@pytest.fixture(params=["sd1", "sd2"])
def unet(request, sd1_unet, sd2_unet):
    return {"sd1": sd1_unet, "sd2": sd2_unet}[request.param]


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """The tiny models run 5-30x faster on one thread than on two busy cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Real-host tests (tests/realhost, tests/comfy) run last, so that the quick tests run while .ci/run builds the
# hosts' venvs in the background (tests.realhost.hostenv; each build is locked, a fixture waits for its own).
SLOW_DIRS = ("realhost", "comfy")


def pytest_collection_modifyitems(config, items):
    def late(item) -> bool:
        parts = Path(str(item.fspath)).parts
        return any(d in parts for d in SLOW_DIRS)

    items.sort(key=late)  # stable: each group keeps its own order


@pytest.fixture
def unet64(sd1_unet, monkeypatch):
    """The tiny SD1 UNet in float64 throughout, for the objectives' reference tests (ldm casts GroupNorm and
    attention to fp32 otherwise)."""
    import copy

    import torch
    from ldm.modules import attention as ldm_attention
    from ldm.modules.diffusionmodules import util as ldm_util

    monkeypatch.setattr(ldm_util.GroupNorm32, "forward", torch.nn.GroupNorm.forward)
    monkeypatch.setattr(ldm_attention, "_ATTN_PRECISION", "fp64")
    unet = copy.deepcopy(sd1_unet).double()
    unet.dtype = torch.float64
    unet.time_embed.register_forward_pre_hook(lambda m, a: (a[0].double(),))
    return unet
