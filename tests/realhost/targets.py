"""Which real host runs which tiny model: every test names a target, a (host, checkpoint) pair."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.realhost.checkpoints_forge import file_name
from tests.realhost.models_sdnext import title as sdnext_title
from tests.realhost.server import WebUI


@dataclass(frozen=True)
class Target:
    id: str
    host: str  # the fixture's name: "a1111", "forge", "classic", "neo" or "sdnext"
    model: str  # the checkpoint's file stem, as /sdapi/v1/sd-models lists it
    family: str  # "sd1", "sd2" or "sdxl"


TARGETS = {
    t.id: t
    for t in (
        Target("a1111-sd1", "a1111", "ae-tiny-sd1", "sd1"),
        Target("a1111-sd2", "a1111", "ae-tiny-sd2", "sd2"),
        Target("a1111-sdxl", "a1111", "ae-tiny-sdxl", "sdxl"),
        Target("forge-sd15", "forge", file_name("sd15").removesuffix(".safetensors"), "sd1"),
        Target("forge-sdxl", "forge", file_name("sdxl").removesuffix(".safetensors"), "sdxl"),
        # Forge Classic and Forge Neo load the Forge SD1.5 test checkpoint as it is. Neo does not recognise the Forge
        # SDXL one (its huggingface_guess knows SDXL's input depths [0, 0, 2, 2, 10, 10] only, not KOALA's): it gets
        # an SDXL with those depths (checkpoints_forge.SDXL_FULL_DEPTH).
        Target("classic-sd15", "classic", file_name("sd15").removesuffix(".safetensors"), "sd1"),
        Target("neo-sd15", "neo", file_name("sd15").removesuffix(".safetensors"), "sd1"),
        Target("neo-sdxl", "neo", file_name("sdxl_full_depth").removesuffix(".safetensors"), "sdxl"),
        # SD.Next samples through diffusers pipelines: tiny diffusers-format folders (models_sdnext).
        Target("sdnext-sd15", "sdnext", sdnext_title("sd15"), "sd1"),
        Target("sdnext-sdxl", "sdnext", sdnext_title("sdxl"), "sdxl"),
    )
}
# The full scenario list runs on one SD1 target per host; the cheap checks and the rise test on every target.
SD1 = ["a1111-sd1", "forge-sd15", "classic-sd15", "neo-sd15"]
# The API scenarios also run on SD.Next (its page and sampler probe are its own: test_sdnext*.py).
API_SD1 = [*SD1, "sdnext-sd15"]
ALL = list(TARGETS)


@dataclass
class Live:
    target: Target
    webui: WebUI


def select(request: pytest.FixtureRequest, target_id: str) -> Live:
    from tests.realhost.conftest import use_model

    target = TARGETS[target_id]
    webui = request.getfixturevalue(target.host)
    use_model(webui, target.model)
    return Live(target, webui)
