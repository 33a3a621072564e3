"""Autograd in Forge, exactly: one A&E step on Forge's own UNet class with inference-tensor weights (as Forge
loads them), through ForgeHost.grad_scope, equals the same step on the same weights in ldm's UNetModel (what
A1111 runs) outside inference mode; Forge's module is left as it was; and both fixes are needed."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch
from ldm.modules.diffusionmodules.openaimodel import UNetModel

from ae_lib import AEParams, AttendExcite, ImageTarget, Schedule
from tests.realhost.conftest import _install
from tests.realhost.server import host_env

pytestmark = pytest.mark.realhost
SCRIPT = os.path.join(os.path.dirname(__file__), "forge_grad_check.py")


@pytest.fixture(scope="module")
def forge_result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    install = _install("forge")
    out = tmp_path_factory.mktemp("forge-grad") / "result.pt"
    run = subprocess.run([str(install.python), SCRIPT, "--forge", str(install.source), "--out", str(out)],
                         capture_output=True, text=True, env=host_env(), timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return torch.load(out, weights_only=False)


def _ldm_unet(config: dict, state: dict) -> UNetModel:
    """The same network in ldm's class: attention where Forge's transformer_depth is non-zero."""
    levels = len(config["channel_mult"])
    attention_resolutions = [2**i for i in range(levels) if config["transformer_depth"][i]]
    unet = UNetModel(
        image_size=32, in_channels=config["in_channels"], out_channels=config["out_channels"],
        model_channels=config["model_channels"], attention_resolutions=attention_resolutions,
        num_res_blocks=config["num_res_blocks"], channel_mult=config["channel_mult"], num_heads=config["num_heads"],
        use_spatial_transformer=True, transformer_depth=1, context_dim=config["context_dim"], legacy=False,
    )
    unet.load_state_dict(state, strict=True)
    return unet.eval()


def test_forge_step_equals_the_ldm_step_on_the_same_weights(forge_result: dict) -> None:
    r = forge_result
    unet = _ldm_unet(r["config"], r["state"])
    ae = AEParams(enabled=True, subjects="cat, frog")
    target = ImageTarget((2, 5), tuple(range(1, 6)), ("cat", "frog"))

    def run(z, rows):
        return unet(z, r["t"].expand(len(rows)), context=r["context"][rows])

    with torch.no_grad():  # A1111 samples under no_grad; the engine enables grad for its pass
        ref = AttendExcite(unet, ae, Schedule.from_params(ae, 10)).step(0, r["z"].clone(), run, [target])
    assert float((ref.latent - r["z"]).abs().max()) > 1e-3, "the step must move the latent"
    torch.testing.assert_close(r["latent"], ref.latent, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(r["written"], ref.latent, rtol=1e-5, atol=1e-5)  # the sampler's tensor moved
    assert r["checks"]["scores"] == pytest.approx(ref.scores[0], abs=1e-5)


def test_forge_module_is_left_as_it_was(forge_result: dict) -> None:
    checks = forge_result["checks"]
    assert checks["inference_params_before"] > 0, "Forge's weights are inference tensors"
    assert checks["inference_params_after"] == checks["inference_params_before"]
    assert checks["params_unchanged"], "the same parameter objects, over the same memory (no copies)"
    assert checks["hooks_left"] == 0
    assert checks["sampler_latent_is_inference"], "the write-back happened inside inference mode"


def test_each_fix_is_needed(forge_result: dict) -> None:
    errors = forge_result["checks"]["errors_without_fixes"]
    assert "inference tensor" in (errors["no fix"] or "").lower(), errors
    assert "modified by an inplace operation" in (errors["aliases only"] or ""), errors


def test_transformer_models_and_unet_replacements_are_refused_against_forges_real_classes() -> None:
    """Flux/Chroma need a T5 encoder and full-size towers: no tiny one loads here, so the refusal is checked
    on Forge's own network classes (built on the meta device)."""
    install = _install("forge")
    script = os.path.join(os.path.dirname(__file__), "forge_refusal_check.py")
    run = subprocess.run([str(install.python), script, "--forge", str(install.source)], capture_output=True,
                         text=True, env=host_env(), timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    verdicts = json.loads(run.stdout.strip().splitlines()[-1])
    for name in ("Flux", "Chroma"):
        assert "has no UNet cross-attention (attn2) layers" in verdicts[name], verdicts
        assert verdicts[name].startswith(f"{name} (Integrated{name}Transformer2DModel)")
    assert verdicts["StableDiffusion"] is None
    assert "replaces the UNet's cross-attention" in verdicts["StableDiffusion+attn2 replace"]
    assert "wraps the UNet's forward" in verdicts["StableDiffusion+forward wrapper"]
