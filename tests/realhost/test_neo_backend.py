"""Forge Neo's model families against ForgeHost's model_problem, on Neo's own classes: SD1.5 and SDXL are
accepted; every other family Neo's loader can return is refused with model_problem's message, before anything
looks for a text engine. tests/realhost/neo_refusal_check.py builds each family's diffusion network on the meta
device (no weights: most of these models are many GB and need text encoders no test can load here) inside Neo's
own UnetPatcher/KModel with the predictor Neo's engine gives it, and reads the engines' text-engine attributes
from backend/diffusion_engine/*.py."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.realhost.conftest import _install
from tests.realhost.server import host_env

pytestmark = pytest.mark.realhost
SCRIPT = os.path.join(os.path.dirname(__file__), "neo_refusal_check.py")

ACCEPTED = ("SD1.5", "SDXL")
TRANSFORMERS = ("Flux", "Flux schnell", "Flux2 Klein", "Chroma", "Wan", "Qwen-Image", "Lumina 2", "Z-Image", "Anima",
                "Ernie-Image", "Krea 2", "PiD")
FLOW_UNETS = ("Mugen", "SDXL rectified flow")  # an SDXL UNet with attn2, sampled as flow matching


@pytest.fixture(scope="module")
def neo() -> dict:
    install = _install("neo")
    run = subprocess.run([str(install.python), SCRIPT, "--neo", str(install.source)], capture_output=True,
                         text=True, env=host_env(), timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_every_family_neo_loads_is_built_on_meta(neo: dict) -> None:
    families = neo["families"]
    failed = {name: f["error"] for name, f in families.items() if not f["built"]}
    assert not failed, failed
    assert all(f["params_on_meta"] for f in families.values())
    checked = {f["engine"] for f in families.values()}
    assert set(neo["possible_models"]) <= checked, "an engine class of Neo's loader has no family here"
    assert {*ACCEPTED, *TRANSFORMERS, *FLOW_UNETS} <= families.keys()


def test_sd15_and_sdxl_are_accepted(neo: dict) -> None:
    for name in ACCEPTED:
        family = neo["families"][name]
        assert family["network"] == "IntegratedUNet2DConditionModel"
        assert family["prediction_type"] == "epsilon", family
        assert family["verdict"] is None and family["host_problem"] is None, family


def test_transformer_families_are_refused_with_the_message(neo: dict) -> None:
    for name in TRANSFORMERS:
        family = neo["families"][name]
        assert family["network"] != "IntegratedUNet2DConditionModel"
        expected = f"{family['engine']} ({family['network']}) has no UNet cross-attention (attn2) layers"
        assert family["verdict"].startswith(expected), (name, family["verdict"])
        assert family["host_problem"] == family["verdict"]


def test_flow_matching_unets_are_refused(neo: dict) -> None:
    for name in FLOW_UNETS:
        family = neo["families"][name]
        assert family["network"] == "IntegratedUNet2DConditionModel"  # attn2 is there: the predictor decides
        assert family["prediction_type"] == "const", family
        assert family["verdict"] == (f"{family['engine']} is a flow-matching model ({family['predictor']}): A&E "
                                     "works on noise- or v-prediction models (SD1.5, SDXL)"), family["verdict"]
        assert family["host_problem"] == family["verdict"]


def test_refusals_come_before_any_text_engine_is_looked_at(neo: dict) -> None:
    """Flux and Mugen carry a CLIP-L engine ae_webui's text lookup would take: only the refusal keeps A&E off."""
    engines = neo["engines"]
    assert engines["Flux"]["found_text_engine"] == "text_processing_engine_l"
    assert engines["Mugen"]["found_text_engine"] == "text_processing_engine_l"
    for name, family in neo["families"].items():
        assert family["text_engine_touched"] == [], (name, family["text_engine_touched"])


def test_the_text_engines_ae_webui_uses_exist_in_neos_engines(neo: dict) -> None:
    engines, tokenizing = neo["engines"], neo["text_classes_with_tokenize_line"]
    assert engines["StableDiffusion"]["found_text_engine"] == "text_processing_engine"
    assert engines["StableDiffusionXL"]["found_text_engine"] == "text_processing_engine_l"
    assert engines["StableDiffusionXL"]["text_engines"]["text_processing_engine_g"] in tokenizing
    for name in ("StableDiffusion", "StableDiffusionXL"):
        assert set(engines[name]["text_engines"].values()) <= set(tokenizing), engines[name]
    assert engines["StableDiffusion"]["flags"] == ["is_sd1"]  # Host.is_sd1: SD1's reference token rule
    assert engines["StableDiffusionXL"]["flags"] == ["is_sdxl"]
    assert "unet" in neo["forge_objects_attributes"]
    for name in neo["possible_models"]:  # every engine keeps its UnetPatcher at forge_objects.unet
        assert engines[name]["forge_objects"] == "ForgeObjects", (name, engines[name])
