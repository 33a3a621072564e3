"""Stand-in for modules/sd_models.py (v1.10.1) plus a tiny, seeded SD1-/SD2-like model (TinySDModel) whose UNet is
the REAL ldm UNetModel and whose apply_model behaves like ldm LatentDiffusion.apply_model + DiffusionWrapper
("crossattn") wrapped by modules/sd_hijack_unet.py:apply_model."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import open_clip.tokenizer
import torch
from ldm.modules.diffusionmodules.openaimodel import UNetModel
from modules import devices, script_callbacks, sd_hijack, sd_hijack_clip, sd_hijack_open_clip, sd_unet, shared

from ae_demo.tiny import make_unet

CONTEXT_DIM = 32
VOCAB = 49408


@dataclass(eq=False)
class CheckpointInfo:
    """modules/sd_models.py:CheckpointInfo -- the fields processing/infotext read, plus the model it loads."""

    title: str
    model: Any = None

    @property
    def name(self) -> str:
        return self.title

    @property
    def name_for_extra(self) -> str:
        return self.title

    @property
    def short_title(self) -> str:
        return self.title

    @property
    def shorthash(self) -> str:
        return "0" * 10


checkpoints_list: dict[str, CheckpointInfo] = {}  # modules/sd_models.py:checkpoints_list
checkpoint_aliases: dict[str, CheckpointInfo] = {}  # modules/sd_models.py:checkpoint_aliases


class _HFStyleTokenizer:
    """The HF CLIPTokenizer calls FrozenCLIPEmbedderWithCustomWords makes, served by open_clip's SimpleTokenizer
    (same CLIP BPE vocabulary; the same ids for ordinary text)."""

    def __init__(self) -> None:
        self._tok = open_clip.tokenizer._tokenizer
        self.bos_token_id = self._tok.encoder["<start_of_text>"]
        self.eos_token_id = self._tok.encoder["<end_of_text>"]

    def get_vocab(self) -> dict[str, int]:
        return self._tok.encoder

    def __call__(self, texts, truncation=False, add_special_tokens=False):
        return {"input_ids": [self._tok.encode(t) for t in texts]}


class _TinyTextModel(torch.nn.Module):
    """A 2-layer toy text encoder: token + position embedding, one residual tanh layer, final LayerNorm."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.token_embedding = torch.nn.Embedding(VOCAB, dim)
        self.position_embedding = torch.nn.Parameter(torch.randn(77, dim) * 0.1)
        self.mix = torch.nn.Linear(dim, dim)
        self.final_layer_norm = torch.nn.LayerNorm(dim)
        self.text_model = SimpleNamespace(final_layer_norm=self.final_layer_norm)  # HF: .text_model.final_layer_norm

    def hidden(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h0 = self.token_embedding(input_ids) + self.position_embedding[: input_ids.shape[1]]
        return h0, h0 + torch.tanh(self.mix(h0))

    def forward(self, input_ids: torch.Tensor, output_hidden_states=False):
        # HF CLIPTextModel-like output (last_hidden_state already layer-normed, hidden_states raw)
        h0, h1 = self.hidden(input_ids)
        return SimpleNamespace(last_hidden_state=self.final_layer_norm(h1), hidden_states=(h0, h1))


class TinyFrozenCLIPEmbedder(torch.nn.Module):
    """SD1 text encoder stand-in (ldm FrozenCLIPEmbedder shape of API: .tokenizer, .transformer)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.tokenizer = _HFStyleTokenizer()
        self.transformer = _TinyTextModel(dim)


class TinyFrozenOpenCLIPEmbedder(torch.nn.Module):
    """SD2 text encoder stand-in (ldm FrozenOpenCLIPEmbedder shape of API: .encode_with_transformer)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.model = _TinyTextModel(dim)

    def encode_with_transformer(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.final_layer_norm(self.model.hidden(tokens)[1])


class TinyVAE(torch.nn.Module):
    """First-stage stand-in: latent/8 <-> image with fixed 1x1 projections (deterministic, no sampling)."""

    def __init__(self) -> None:
        super().__init__()
        self.to_rgb = torch.nn.Conv2d(4, 3, 1)
        self.from_rgb = torch.nn.Conv2d(3, 4, 1)

    @property
    def dtype(self) -> torch.dtype:
        return self.to_rgb.weight.dtype

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(torch.nn.functional.interpolate(self.to_rgb(z), scale_factor=8, mode="nearest"))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_rgb(torch.nn.functional.avg_pool2d(x, 8))


class DiffusionWrapper(torch.nn.Module):
    """ldm/models/diffusion/ddpm.py:DiffusionWrapper for conditioning_key 'crossattn': c_concat is ignored."""

    def __init__(self, diffusion_model: UNetModel) -> None:
        super().__init__()
        self.diffusion_model = diffusion_model
        self.conditioning_key = "crossattn"

    def forward(self, x, t, c_concat: list | None = None, c_crossattn: list | None = None, c_adm=None):
        cc = torch.cat(c_crossattn, 1)
        if sd_unet.current_unet is not None:  # modules/sd_unet.py:create_unet_forward
            return sd_unet.current_unet.forward(x, t, cc)
        return self.diffusion_model(x, t, context=cc)


class TinySDModel(torch.nn.Module):
    """A tiny SD1/SD2-like LatentDiffusion stand-in. Deterministic from its seed."""

    def __init__(self, kind: str, seed: int = 0) -> None:
        super().__init__()
        unet = make_unet(kind, seed)  # the tests' tiny SD1/SD2 UNet (real ldm classes), ae_demo/tiny.py
        encoder = TinyFrozenCLIPEmbedder(CONTEXT_DIM) if kind == "sd1" else TinyFrozenOpenCLIPEmbedder(CONTEXT_DIM)
        self.model = DiffusionWrapper(unet)
        self.first_stage_model = TinyVAE()
        # modules/sd_hijack.py:StableDiffusionModelHijack.hijack wraps the text encoder
        wrapper_cls = (
            sd_hijack_clip.FrozenCLIPEmbedderWithCustomWords
            if kind == "sd1"
            else sd_hijack_open_clip.FrozenOpenCLIPEmbedderWithCustomWords
        )
        self.cond_stage_model = wrapper_cls(encoder, sd_hijack.model_hijack)
        # ldm DDPM.register_schedule: linear betas in sqrt space from 0.00085 to 0.012, 1000 steps
        betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
        self.register_buffer("alphas_cumprod", torch.tensor(np.cumprod(1.0 - betas), dtype=torch.float32))
        self.parameterization = "eps"
        self.kind = kind
        self.is_sd1, self.is_sd2, self.is_sdxl, self.is_sd3, self.is_ssd = (
            kind == "sd1",
            kind == "sd2",
            False,
            False,
            False,
        )
        self.is_sdxl_inpaint = False
        self.cond_stage_key = "txt"
        self.latent_channels = 4
        self.scale_factor = 0.18215
        self.lowvram = False
        self.sd_model_hash = f"tiny{kind}{seed:04d}"
        self.sd_checkpoint_info = CheckpointInfo(f"tiny-{kind}-{seed}.safetensors", self)
        self.cond_stage_model_empty_prompt: torch.Tensor | None = None
        self.requires_grad_(True)  # UNet params keep requires_grad=True in the WebUI
        self.eval()

    @property
    def dtype(self) -> torch.dtype:
        return devices.dtype_unet

    def ema_scope(self, context=None):
        return contextlib.nullcontext()

    def apply_model(self, x_noisy: torch.Tensor, t: torch.Tensor, cond, **kwargs) -> torch.Tensor:
        """modules/sd_hijack_unet.py:apply_model (casts every cond-dict tensor IN PLACE in the dict, then x and t)
        around ldm LatentDiffusion.apply_model (a non-dict cond becomes {'c_crossattn': [cond]})."""
        if isinstance(cond, dict):
            for key in cond:
                if isinstance(cond[key], list):
                    cond[key] = [c.to(devices.dtype_unet) if isinstance(c, torch.Tensor) else c for c in cond[key]]
                elif isinstance(cond[key], torch.Tensor):
                    cond[key] = cond[key].to(devices.dtype_unet)
        else:
            cond = {"c_crossattn": cond if isinstance(cond, list) else [cond]}
        with devices.autocast():
            out = self.model(x_noisy.to(devices.dtype_unet), t.to(devices.dtype_unet), **cond)
            return out.float() if devices.unet_needs_upcast else out

    def get_learned_conditioning(self, texts) -> torch.Tensor:
        """ldm LatentDiffusion.get_learned_conditioning -> the wrapper's forward(texts)."""
        return self.cond_stage_model(texts)

    def decode_first_stage(self, z: torch.Tensor) -> torch.Tensor:
        return self.first_stage_model.decode(z / self.scale_factor)

    def encode_first_stage(self, x: torch.Tensor) -> torch.Tensor:
        return self.first_stage_model.encode(x)

    def get_first_stage_encoding(self, encoder_posterior: torch.Tensor) -> torch.Tensor:
        return self.scale_factor * encoder_posterior


def make_sd1_model(seed: int = 0) -> TinySDModel:
    """Tiny SD1-like model (num_heads=2, CLIP-style wrapper, pad = end id 49407)."""
    return TinySDModel("sd1", seed)


def make_sd2_model(seed: int = 0) -> TinySDModel:
    """Tiny SD2-like model (num_head_channels=16, linear transformer projections, OpenCLIP wrapper, pad id 0)."""
    return TinySDModel("sd2", seed)


def register_checkpoint(model: TinySDModel) -> CheckpointInfo:
    """stand-in: make a model selectable by name (refiner / hires checkpoint / X/Y/Z) without loading it."""
    info = model.sd_checkpoint_info
    checkpoints_list[info.title] = info
    for alias in (info.title, info.name, info.short_title, model.sd_model_hash):
        checkpoint_aliases[alias] = info
    return info


def _activate(model: TinySDModel) -> None:
    # the tail of modules/sd_models.py:load_model: lowvram flag, hijack, empty-prompt cond, model_loaded callbacks
    model.lowvram = bool(shared.cmd_opts.lowvram or shared.cmd_opts.medvram)
    shared.sd_model = model
    sd_hijack.model_hijack.hijack(model)
    if model.cond_stage_model_empty_prompt is None:
        with torch.no_grad():
            model.cond_stage_model_empty_prompt = model.get_learned_conditioning([""])
    script_callbacks.model_loaded_callback(model)


def load_model(model: TinySDModel) -> TinySDModel:
    """modules/sd_models.py:load_model -- makes `model` the selected checkpoint (opts.sd_model_checkpoint) and
    shared.sd_model, then runs the on_model_loaded callbacks."""
    info = register_checkpoint(model)
    shared.opts.sd_model_checkpoint = info.title
    _activate(model)
    return model


def select_checkpoint() -> CheckpointInfo | None:
    """modules/sd_models.py:select_checkpoint"""
    return checkpoint_aliases.get(shared.opts.sd_model_checkpoint)


def reload_model_weights(sd_model=None, info: CheckpointInfo | None = None, forced_reload: bool = False):
    """modules/sd_models.py:reload_model_weights -- switch shared.sd_model to `info` (default: the selected
    checkpoint) when it is not already loaded; a switch runs the model_loaded callbacks."""
    target = info or select_checkpoint()
    if target is None or shared.sd_model is None or shared.sd_model.sd_checkpoint_info is target:
        return shared.sd_model
    _activate(target.model)
    return shared.sd_model


def get_closet_checkpoint_match(search_string: str) -> CheckpointInfo | None:
    """modules/sd_models.py:get_closet_checkpoint_match -- exact alias, else first title containing the string."""
    if not search_string:
        return None
    if search_string in checkpoint_aliases:
        return checkpoint_aliases[search_string]
    found = sorted(
        [info for info in checkpoints_list.values() if search_string in info.title], key=lambda x: len(x.title)
    )
    return found[0] if found else None


class SkipWritingToConfig(contextlib.nullcontext):
    """modules/sd_models.py:SkipWritingToConfig"""


def apply_token_merging(sd_model, token_merging_ratio: float) -> None:
    """modules/sd_models.py:apply_token_merging -- tomesd is not available here; ratios must stay 0."""


def apply_alpha_schedule_override(sd_model, p=None) -> None:
    """modules/sd_models.py:apply_alpha_schedule_override -- fp32 here, so alphas_cumprod stays as is."""
