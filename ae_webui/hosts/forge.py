"""Forge (lllyasviel/stable-diffusion-webui-forge): its own UNet (backend/nn/unet.py) inside KModel inside a
UnetPatcher at `sd_model.forge_objects.unet`, the text-processing engines, and sampling under inference mode.

Autograd there (inference mode, inference-tensor weights, in-place residual adds) is handled by what the
tensors and blocks are, in ae_lib.autograd.grad_scope (Host.grad_scope), for every host alike.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ae_lib.capture import find_cross_attention
from ae_lib.refusals import no_cross_attention
from ae_webui.hosts.base import Host, RunCond, patcher_problem


def model_problem(model: Any) -> str | None:
    """Why A&E cannot run on this Forge model (a diffusion engine of backend/diffusion_engine/), or None."""
    objects = getattr(model, "forge_objects", None)
    if objects is None or getattr(objects, "unet", None) is None:
        return f"{type(model).__name__} has no Forge UNet"
    network = objects.unet.model.diffusion_model
    if not find_cross_attention(network):
        return no_cross_attention(f"{type(model).__name__} ({type(network).__name__})")
    # KModel's predictor: A&E's latent update assumes the UNet sees x/sqrt(sigma^2+1) (noise or v prediction);
    # a flow-matching model on a UNet (Neo's Mugen, rectified-flow SDXL) sees x itself ("const").
    predictor = getattr(objects.unet.model, "predictor", None)
    kind = getattr(predictor, "prediction_type", None)
    if predictor is not None and kind not in ("epsilon", "v_prediction"):
        return (f"{type(model).__name__} is a {'flow-matching' if kind == 'const' else repr(kind)} model "
                f"({type(predictor).__name__}): A&E works on noise- or v-prediction models (SD1.5, SDXL)")
    return patcher_problem(objects.unet)


class ForgeHost(Host):
    name = "forge"

    def unet(self, sd_model: Any) -> nn.Module:
        return sd_model.forge_objects.unet.model.diffusion_model

    def problem(self, p: Any) -> str | None:
        from modules import shared

        return model_problem(shared.sd_model)

    def cond_runner(
        self, sd_model: Any, denoiser: Any, tensor: Any, rows: list[int], image_cond: Any, sigma: torch.Tensor,
        kdiffusion: bool,
    ) -> RunCond:
        """The diffusion model on z directly, with what KModel.apply_model would hand it for the cond rows."""
        from backend.sampling.sampling_function import compute_cond_indices, compute_cond_mark

        patcher = sd_model.forge_objects.unet
        kmodel = patcher.model
        base_options = patcher.model_options.get("transformer_options", {})
        dtype = kmodel.computation_dtype

        def model_sigma(s: torch.Tensor) -> torch.Tensor:
            if kdiffusion:
                return s
            # Timestep samplers pass the timestep; CFGDenoiser.forward (classic_ddim_eps_estimation) maps it so.
            acd = denoiser.inner_model.inner_model.alphas_cumprod
            fake = ((1 - acd) / acd) ** 0.5
            return fake[s.round().long().clip(0, int(fake.shape[0]))].to(s)

        def run(z_rows: torch.Tensor, sel: list[int]) -> Any:
            idx = [rows[i] for i in sel]
            cross = tensor["crossattn"][idx] if isinstance(tensor, dict) else tensor[idx]
            extra = {"y": tensor["vector"][idx].to(dtype)} if isinstance(tensor, dict) and "vector" in tensor else {}
            s = sigma[sel]
            xc = z_rows
            if isinstance(image_cond, torch.Tensor) and image_cond.shape[2:] == z_rows.shape[2:]:
                xc = torch.cat([xc, image_cond[sel].to(xc)], dim=1)  # inpainting models: as sampling_function
            options = {**base_options, "cond_or_uncond": [0], "sigmas": s}
            options["cond_mark"] = compute_cond_mark([0], s)
            options["cond_indices"], options["uncond_indices"] = compute_cond_indices([0], s)
            t = kmodel.predictor.timestep(model_sigma(s)).float()
            return kmodel.diffusion_model(
                xc.to(dtype), t, context=cross.to(dtype), control=None, transformer_options=options, **extra
            )

        return run

