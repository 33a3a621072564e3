"""Tiny random-weight models from the real ldm classes, the real CLIP BPE tokenizer, and a tiny text encoder.

SD1-like: heads fixed per layer (num_heads), like SD1's config. SD2-like: num_head_channels and linear
projections in the transformer, like SD2's config. Same block layout as SD ([4, 2, 1] attention
resolutions, channel_mult (1, 2, 4, 4), 2 res blocks), so the attn2 names and resolutions match SD's.
"""

from __future__ import annotations

import importlib.util
import sysconfig
from functools import lru_cache
from pathlib import Path

import torch
from ldm.modules.diffusionmodules.openaimodel import UNetModel

from ae_lib.tokens import TokenColumn

CONTEXT_DIM = 32
BOS, EOS = 49406, 49407


def make_unet(kind: str = "sd1", seed: int = 0) -> UNetModel:
    torch.manual_seed(seed)
    common = dict(
        image_size=32,
        in_channels=4,
        out_channels=4,
        model_channels=32,
        attention_resolutions=[4, 2, 1],
        num_res_blocks=2,
        channel_mult=(1, 2, 4, 4),
        use_spatial_transformer=True,
        transformer_depth=1,
        context_dim=CONTEXT_DIM,
        legacy=False,
    )
    if kind == "sd1":  # configs/v1-inference.yaml: num_heads
        unet = UNetModel(num_heads=2, **common)
    elif kind == "sd2":  # v2-inference.yaml: num_head_channels + linear projections
        unet = UNetModel(num_head_channels=16, use_linear_in_transformer=True, **common)
    else:
        raise ValueError(kind)
    _unzero(unet, seed)
    return unet.eval()


def _unzero(module: torch.nn.Module, seed: int) -> None:
    """ldm zero-initialises output convs and transformer projections (training starts as identity); a random
    model that should act like a trained one needs them non-zero, or every block would be a no-op."""
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() > 1 and not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def make_context(batch: int, seed: int = 1, columns: int = 77) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, columns, CONTEXT_DIM, generator=g)


def cond_runner(unet: UNetModel, context: torch.Tensor, t: float = 500.0):
    """run_cond for the engine: the UNet's conditional branch for the given batch rows."""

    def run(z: torch.Tensor, rows: list[int]) -> torch.Tensor:
        timesteps = torch.full((z.shape[0],), t)
        return unet(z, timesteps, context=context[rows])

    return run


@lru_cache(maxsize=1)
def clip_tokenizer():
    """open_clip's SimpleTokenizer loaded by file path (importing open_clip itself needs torchvision)."""
    base = Path(sysconfig.get_paths()["purelib"]) / "open_clip"
    spec = importlib.util.spec_from_file_location("_ae_test_open_clip_tokenizer", base / "tokenizer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer()


def prompt_columns(prompt: str, pad_id: int = EOS) -> list[TokenColumn]:
    """One chunk of 77 columns as the WebUI lays them out: start, tokens, end, padding."""
    tok = clip_tokenizer()
    ids = tok.encode(prompt)[:75]
    cols = [TokenColumn(0, BOS, "<start>", "start")]
    for j, i in enumerate(ids):
        piece = tok.decoder[i]
        end = piece.endswith("</w>")
        cols.append(TokenColumn(j + 1, i, piece.removesuffix("</w>"), "token", end))
    cols.append(TokenColumn(len(ids) + 1, EOS, "<end>", "end"))
    while len(cols) < 77:
        cols.append(TokenColumn(len(cols), pad_id, "", "pad"))
    return cols


class TinyTextEncoder(torch.nn.Module):
    """A small causal transformer over the real CLIP vocabulary (random weights): (B, 77) ids -> (B, 77, 32)."""

    def __init__(self, seed: int = 0, width: int = CONTEXT_DIM, layers: int = 2) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.token = torch.nn.Embedding(49408, width)
        self.position = torch.nn.Parameter(torch.randn(77, width) * 0.1)
        layer = torch.nn.TransformerEncoderLayer(width, 4, width * 2, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(width)
        # Trained text encoders give column norms of ~20-30 (SD's CLIP); unit-variance features would make every
        # attention map near-uniform (scores ~1/75). A gain of 4 on 32 features gives such norms.
        torch.nn.init.constant_(self.norm.weight, 4.0)
        self.register_buffer("mask", torch.full((77, 77), float("-inf")).triu(1), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.token(ids) + self.position
        return self.norm(self.encoder(h, mask=self.mask))

    def encode(self, prompts: list[str]) -> torch.Tensor:
        ids = [[c.token_id for c in prompt_columns(p)] for p in prompts]
        with torch.no_grad():
            return self(torch.tensor(ids))


class TinyLatentDiffusion(torch.nn.Module):
    """What k-diffusion's CompVisDenoiser expects of an ldm model: alphas_cumprod and apply_model(x, t, cond)."""

    def __init__(self, unet: UNetModel) -> None:
        super().__init__()
        self.diffusion_model = unet
        betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2  # SD's scaled-linear
        self.register_buffer("alphas_cumprod", torch.cumprod(1.0 - betas, dim=0).float())

    def apply_model(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.diffusion_model(x, t, context=cond)
