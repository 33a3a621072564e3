"""The interface each host adapter implements (see ae_webui/hosts/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from ae_lib.autograd import grad_scope
from ae_lib.refusals import options_problem

RunCond = Callable[[torch.Tensor, list[int]], Any]


# Where each WebUI keeps the text side whose columns the UNet's context has, first match wins:
# SDXL's CLIP-L embedder (A1111's conditioner, or Forge/Neo's `_l` engine: its columns line up with CLIP-G's; the
# SDXL refiner has only `_g`),
# A1111/Classic's hijacked `cond_stage_model`, Forge/Neo's `text_processing_engine` (Neo: ClassicTextProcessingEngine
# or upstream's ClipEngine, the same tokenize_line/id_end/tokenizer).
TEXT_ATTRIBUTES = ("text_processing_engine", "text_processing_engine_l", "text_processing_engine_g", "cond_stage_model")


def find_text_engine(sd_model: Any) -> Any:
    """The model's text engine with `tokenize_line`, found by what the model has (not by host name)."""
    conditioner = getattr(sd_model, "conditioner", None)
    for embedder in getattr(conditioner, "embedders", None) or []:
        if hasattr(embedder, "tokenize_line"):
            return embedder
    for attr in TEXT_ATTRIBUTES:
        engine = getattr(sd_model, attr, None)
        if engine is not None and hasattr(engine, "tokenize_line"):
            return engine
    msg = (f"the current model ({type(sd_model).__name__}) has no text engine with tokenize_line; if no model is "
           "loaded yet (Forge and Neo load it at the first generation), generate once")
    raise RuntimeError(msg)


def patcher_problem(unet_patcher: Any) -> str | None:
    """Forge-family UNet patchers (Forge, Neo, Classic's old-Forge `forge_objects.unet`): options that change what
    the UNet computes in a way A&E's own pass cannot see or repeat (sampling_function.calc_cond_uncond_batch)."""
    return options_problem(getattr(unet_patcher, "model_options", None) or {}, "feature")


class Host:
    name = "?"

    def unet(self, sd_model: Any) -> nn.Module:
        """The diffusion UNet whose attn2 modules A&E reads."""
        raise NotImplementedError

    def text_wrapper(self, sd_model: Any) -> Any:
        """The object whose tokenize_line(text) gives the cond's PromptChunks (with id_end and a tokenizer)."""
        return find_text_engine(sd_model)

    def is_sd1(self, sd_model: Any) -> bool:
        return bool(getattr(sd_model, "is_sd1", True)) and not bool(getattr(sd_model, "is_sdxl", False))

    def problem(self, p: Any) -> str | None:
        """Why A&E cannot run with this host's current model and options, or None."""
        return None

    def cond_runner(
        self, sd_model: Any, denoiser: Any, tensor: Any, rows: list[int], image_cond: Any, sigma: torch.Tensor,
        kdiffusion: bool,
    ) -> RunCond:
        """run(z_rows, sel): the UNet's conditional branch for images `sel` on z (the latent the UNet sees)."""
        raise NotImplementedError

    def grad_scope(self, unet: nn.Module) -> AbstractContextManager[None]:
        """Where the A&E passes run (what this host's tensors need, ae_lib.autograd); the write into the
        sampler's latent happens after it closes, back in the host's own grad mode."""
        return grad_scope(unet)
