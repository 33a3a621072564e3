"""Forge (lllyasviel/stable-diffusion-webui-forge): its own UNet (backend/nn/unet.py) inside KModel inside a
UnetPatcher at `sd_model.forge_objects.unet`, the text-processing engines, and sampling under inference mode.

Autograd needs three things there, all undone when each A&E pass ends (webui-host-forge.md §3):
- leave inference mode (`inference_mode(False)` + `enable_grad`);
- parameters that autograd may save: Forge builds and moves its weights under inference mode, so they are
  inference tensors. Each is swapped for a normal tensor that *aliases its storage* (zero-copy, nothing of the
  UNet is duplicated) and put back after the pass;
- `BasicTransformerBlock._forward` adds residuals in place (`x += n`) into tensors LayerNorm saved: the inputs
  of norm1/norm2/norm3 are cloned during the pass (activation-sized, only while grad is recorded).
The write into the sampler's latent happens after the pass, back inside Forge's inference mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn

from ae_lib.capture import find_cross_attention
from ae_webui.hosts.base import Host, RunCond

NORMS = ("norm1", "norm2", "norm3")


def _alias(t: torch.Tensor) -> torch.Tensor:
    """A normal (non-inference) tensor over the same storage: autograd may save it, and no memory is copied."""
    out = torch.empty(0, dtype=t.dtype, device=t.device)
    return out.set_(t.untyped_storage(), t.storage_offset(), t.shape, t.stride())


@contextmanager
def normal_parameters(module: nn.Module) -> Iterator[int]:
    """Swap every inference-tensor parameter/buffer for a zero-copy alias; the originals come back after."""
    swapped: list[tuple[dict, str, Any]] = []
    try:
        with torch.inference_mode(False):
            for m in module.modules():
                for store in (m._parameters, m._buffers):
                    for name, value in store.items():
                        if value is None or not value.is_inference():
                            continue
                        swapped.append((store, name, value))
                        alias = _alias(value)
                        store[name] = nn.Parameter(alias, requires_grad=False) if store is m._parameters else alias
        yield len(swapped)
    finally:
        for store, name, value in reversed(swapped):
            store[name] = value


def _clone_input(module: nn.Module, args: tuple) -> tuple | None:
    if torch.is_grad_enabled() and args and isinstance(args[0], torch.Tensor):
        return (args[0].clone(), *args[1:])
    return None


@contextmanager
def cloned_norm_inputs(module: nn.Module) -> Iterator[None]:
    """Pre-hooks on the transformer blocks' norms: their saved input is a copy the in-place `x += n` leaves alone."""
    handles = [
        m.register_forward_pre_hook(_clone_input)
        for name, m in module.named_modules()
        if name.rsplit(".", 1)[-1] in NORMS and isinstance(m, nn.LayerNorm)
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def model_problem(model: Any) -> str | None:
    """Why A&E cannot run on this Forge model (a diffusion engine of backend/diffusion_engine/), or None."""
    objects = getattr(model, "forge_objects", None)
    if objects is None or getattr(objects, "unet", None) is None:
        return f"{type(model).__name__} has no Forge UNet"
    network = objects.unet.model.diffusion_model
    if not find_cross_attention(network):
        return (f"{type(model).__name__} ({type(network).__name__}) has no UNet cross-attention (attn2) layers, "
                "which A&E needs: Flux, Chroma and SD3 are transformers without them")
    model_options = objects.unet.model_options
    if model_options.get("transformer_options", {}).get("patches_replace", {}).get("attn2"):
        return "another feature replaces the UNet's cross-attention (e.g. IP-Adapter); its maps are not visible"
    if model_options.get("model_function_wrapper") is not None:  # sampling_function.calc_cond_uncond_batch
        return ("another feature wraps the UNet's forward (e.g. MultiDiffusion's tiles); A&E's pass would not run "
                "the model the sampler runs")
    return None


class ForgeHost(Host):
    name = "forge"

    def unet(self, sd_model: Any) -> nn.Module:
        return sd_model.forge_objects.unet.model.diffusion_model

    def text_wrapper(self, sd_model: Any) -> Any:
        """SD1/SD2: text_processing_engine; SDXL: the CLIP-L engine (its columns line up with CLIP-G's)."""
        for attr in ("text_processing_engine", "text_processing_engine_l", "text_processing_engine_g"):
            engine = getattr(sd_model, attr, None)
            if engine is not None and hasattr(engine, "tokenize_line"):
                return engine
        msg = f"{type(sd_model).__name__} has no text-processing engine with tokenize_line"
        raise RuntimeError(msg)

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

    @contextmanager
    def grad_scope(self, unet: nn.Module) -> Iterator[None]:
        with ExitStack() as stack:
            stack.enter_context(torch.inference_mode(False))
            stack.enter_context(torch.enable_grad())
            stack.enter_context(normal_parameters(unet))
            stack.enter_context(cloned_norm_inputs(unet))
            yield
