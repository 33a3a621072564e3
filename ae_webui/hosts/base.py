"""The interface each host adapter implements (see ae_webui/hosts/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from ae_lib.autograd import grad_scope

RunCond = Callable[[torch.Tensor, list[int]], Any]


class Host:
    name = "?"

    def unet(self, sd_model: Any) -> nn.Module:
        """The diffusion UNet whose attn2 modules A&E reads."""
        raise NotImplementedError

    def text_wrapper(self, sd_model: Any) -> Any:
        """The object whose tokenize_line(text) gives the cond's PromptChunks (with id_end and a tokenizer)."""
        raise NotImplementedError

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
