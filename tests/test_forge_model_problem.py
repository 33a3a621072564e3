"""ForgeHost's model_problem without a host: what it refuses, on stand-ins shaped like Forge's objects
(engine.forge_objects.unet: a ModelPatcher whose .model is a KModel with .diffusion_model and .predictor).
The same refusals on the hosts' own classes: tests/realhost/test_forge_backend.py, test_neo_backend.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from torch import nn

from ae_webui.hosts.forge import model_problem


def _engine(network: nn.Module, prediction_type: str | None = "epsilon", **options: object) -> object:
    kmodel = SimpleNamespace(diffusion_model=network)
    if prediction_type is not None:
        kmodel.predictor = type("PredictionDiscreteFlow" if prediction_type == "const" else "Prediction", (), {
            "prediction_type": prediction_type})()
    patcher = SimpleNamespace(model=kmodel, model_options={"transformer_options": {}, **options})
    return type("Mugen", (), {"forge_objects": SimpleNamespace(unet=patcher)})()


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", None])
def test_noise_and_v_prediction_unets_are_accepted(sd1_unet, kind):
    assert model_problem(_engine(sd1_unet, kind)) is None


def test_a_flow_matching_unet_is_refused(sd1_unet):
    """Neo's Mugen and rectified-flow SDXL: an SDXL UNet (attn2 and all) that sees x itself, not x/sqrt(s^2+1)."""
    problem = model_problem(_engine(sd1_unet, "const"))
    assert problem == ("Mugen is a flow-matching model (PredictionDiscreteFlow): A&E works on noise- or "
                       "v-prediction models (SD1.5, SDXL)")


def test_an_unknown_prediction_type_is_refused(sd1_unet):
    assert "is a 'edm' model" in model_problem(_engine(sd1_unet, "edm"))


def test_a_transformer_is_refused_before_its_predictor_is_read():
    network = nn.Sequential(nn.Linear(4, 4))
    problem = model_problem(_engine(network, "const"))
    assert problem.startswith("Mugen (Sequential) has no UNet cross-attention (attn2) layers")


def test_no_forge_unet():
    assert model_problem(object()) == "object has no Forge UNet"


def test_unet_replacements_are_refused_after_the_model_checks(sd1_unet):
    replaced = {"patches_replace": {"attn2": {("input", 4, 0): print}}}
    assert "replaces the UNet's cross-attention" in model_problem(_engine(sd1_unet, transformer_options=replaced))
    assert "wraps the UNet's forward" in model_problem(_engine(sd1_unet, model_function_wrapper=print))
    assert "flow-matching" in model_problem(_engine(sd1_unet, "const", model_function_wrapper=print))
