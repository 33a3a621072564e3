"""A1111 v1.10.1: the ldm/sgm UNet under `sd_model.model`, the hijacked text wrappers, apply_model with the cond
dict CFGDenoiser builds (webui-host-a1111.md); sampling runs under torch.no_grad, so enable_grad suffices."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ae_webui.hosts.base import Host, RunCond, patcher_problem


class A1111Host(Host):
    name = "a1111"

    def unet(self, sd_model: Any) -> nn.Module:
        return sd_model.model.diffusion_model

    def problem(self, p: Any) -> str | None:
        from modules import sd_unet, shared

        if getattr(sd_unet, "current_unet", None) is not None:
            return "a replacement UNet (sd_unet, e.g. TensorRT) is active: it has no attention maps or gradients"
        if getattr(shared.cmd_opts, "lowvram", False):  # lowvram.is_enabled() is also true for --medvram, which works
            return "--lowvram moves UNet blocks off the GPU between forward and backward"
        if getattr(shared.sd_model, "is_sd3", False):
            return "SD3 has no cross-attention layers"
        objects = getattr(shared.sd_model, "forge_objects", None)  # Forge Classic samples through a UNet patcher
        return patcher_problem(objects.unet) if getattr(objects, "unet", None) is not None else None

    def cond_runner(
        self, sd_model: Any, denoiser: Any, tensor: Any, rows: list[int], image_cond: Any, sigma: torch.Tensor,
        kdiffusion: bool,
    ) -> RunCond:
        """The conditional branch of the images `sel`, as CFGDenoiser.forward would call it."""
        is_adm = getattr(sd_model.model, "conditioning_key", None) == "crossattn-adm"

        def run(z_rows: torch.Tensor, sel: list[int]) -> Any:
            idx = [rows[i] for i in sel]
            c = {k: v[idx] for k, v in tensor.items()} if isinstance(tensor, dict) else tensor[idx]
            ic = image_cond[sel] if image_cond is not None else None
            if is_adm:
                cond = {"c_crossattn": [c], "c_adm": ic}
            elif isinstance(c, dict):
                cond = {**c, "c_concat": [ic]}
            else:
                cond = {"c_crossattn": [c], "c_concat": [ic]}
            s = sigma[sel]
            t = denoiser.inner_model.sigma_to_t(s) if kdiffusion else s
            return sd_model.apply_model(z_rows, t, cond)

        return run
