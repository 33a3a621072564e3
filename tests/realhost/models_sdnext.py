"""Tiny random-weight diffusers-format SD1.5 and SDXL pipelines that the unmodified SD.Next lists and loads.

SD.Next lists every folder with a model_index.json under its `diffusers_dir` as `Diffusers/<folder>` and picks
the pipeline class from `_class_name` (SOURCES.md). The weights are random and tiny (UNet widths 32/64, CLIP
text towers of 1-2 layers, a 4-level AutoencoderKL so the latent is image/8 as in SD); the tokenizers are CLIP's real
BPE, copied from SD.Next's own `configs/sd15/tokenizer` and `configs/sdxl/tokenizer(_2)` (vocab.json and
merges.txt, 49408 entries), so prompts tokenize as with a real model. Built in SD.Next's venv (the project's
.venv has no diffusers); nothing of SD.Next is imported.

    python tests/realhost/models_sdnext.py DEST --sdnext PATH/TO/sdnext [sd15|sdxl ...]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.realhost.hostenv import HostInstall

VERSION = 5  # bump when the weights or the layout change: the folder name carries it
FAMILIES = ("sd15", "sdxl")
SEED = {"sd15": 1501, "sdxl": 1502}


def folder_name(family: str) -> str:
    return f"ae-tiny-{family}-v{VERSION}"


def title(family: str) -> str:
    """How SD.Next names the model (/sdapi/v1/sd-models `title` starts with it; config sd_model_checkpoint)."""
    return f"Diffusers/{folder_name(family)}"


# --- in SD.Next's venv ---------------------------------------------------------------------------------------------


def _tokenizer(source: Path) -> Any:
    from transformers import CLIPTokenizer

    return CLIPTokenizer(str(source / "vocab.json"), str(source / "merges.txt"), pad_token="<|endoftext|>",
                         model_max_length=77)


def _text_encoder(width: int, projection: int | None, layers: int = 2) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=49408, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                            num_attention_heads=4, max_position_embeddings=77, bos_token_id=49406,
                            eos_token_id=49407, pad_token_id=49407, projection_dim=projection or width)
    return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)


def _vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(32, 32, 32, 32), layers_per_block=1, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         norm_num_groups=8, sample_size=64)


def _scheduler() -> Any:
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading")


def _sd15(sdnext: Path) -> Any:
    """SD1.5's block layout (attention at the first two levels and the middle), 32/64/64 wide, context 64."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64, attention_head_dim=8, norm_num_groups=8,
    )
    return StableDiffusionPipeline(
        vae=_vae(), text_encoder=_text_encoder(64, None), tokenizer=_tokenizer(sdnext / "configs/sd15/tokenizer"),
        unet=unet, scheduler=_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


# SD.Next's own prompt encoder (modules/prompt_parser_diffusers.py: get_weighted_text_embeddings) computes SDXL's
# pooled embedding only when the second text encoder is wider than 768 (CLIP-G is 1280): 784 (4 heads of 196).
SDXL_TE2_WIDTH = 784


def _sdxl(sdnext: Path) -> Any:
    """SDXL's layout (three levels, no attention at the first, so cross-attention at latent/2 and latent/4, where
    A&E's default grid is; text_time added embedding, two text encoders whose hidden states are concatenated:
    32 + 784 = context 816; the pooled projection of the second feeds add_embedding)."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=32 + SDXL_TE2_WIDTH, norm_num_groups=8,
    )
    return StableDiffusionXLPipeline(
        vae=_vae(), text_encoder=_text_encoder(32, None), text_encoder_2=_text_encoder(SDXL_TE2_WIDTH, 32, layers=1),
        tokenizer=_tokenizer(sdnext / "configs/sdxl/tokenizer"),
        tokenizer_2=_tokenizer(sdnext / "configs/sdxl/tokenizer_2"),
        unet=unet, scheduler=_scheduler(), force_zeros_for_empty_prompt=True,
    )


# SD1.5's context is a LayerNorm output: with a plain (1, 0) final norm and unit-scale attn2 keys the attention
# over its 75 columns is near uniform (scores ~0.01-0.05 at 256 px, two decimals in the info cannot show a
# change). As the other hosts' test checkpoints (checkpoints.py `_enliven`, checkpoints_forge.SD15): final norms
# with gain ~4 and a bias, keys x3 and conv_in x4 (the latent then moves the features attention reads) give
# scores ~0.2-0.4 and a clear rise with A&E on every seed tried (11-14).
# SDXL reads the penultimate hidden states (no final norm): with init-scale token embeddings every column is
# alike (scores 0.2 = 1/5 whatever A&E does). Token embeddings with std 4 (checkpoints.py), and the Forge SDXL
# gains (keys x0.6, values x0.02, conv_in x4: checkpoints_forge.SDXL) raise the weaker subject (seeds 11, 12).
GAINS = {"sd15": {"attn2.to_k": 3.0, "conv_in": 4.0},
         "sdxl": {"attn2.to_k": 0.6, "attn2.to_v": 0.02, "conv_in": 4.0}}
TOKEN_STD = {"sd15": None, "sdxl": 4.0}


def _enliven(pipe: Any, gains: dict[str, float], token_std: float | None, seed: int) -> None:
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for encoder in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)):
            for name, module in encoder.named_modules() if encoder is not None else ():
                if token_std and isinstance(module, torch.nn.Embedding) and module.num_embeddings == 49408:
                    module.weight.copy_(torch.randn(module.weight.shape, generator=g) * token_std)
                if name.endswith("final_layer_norm"):
                    module.weight.copy_(4.0 + torch.randn(module.weight.shape, generator=g))
                    module.bias.copy_(torch.randn(module.bias.shape, generator=g))
        for name, module in pipe.unet.named_modules():
            for suffix, gain in gains.items():
                if name.endswith(suffix) and getattr(module, "weight", None) is not None:
                    module.weight.mul_(gain)


def build(dest: Path, family: str, sdnext: Path) -> Path:
    import torch

    torch.manual_seed(SEED[family])
    pipe = (_sd15 if family == "sd15" else _sdxl)(sdnext)
    _enliven(pipe, GAINS[family], TOKEN_STD[family], SEED[family])
    out = dest / folder_name(family)
    tmp = dest / f".{folder_name(family)}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(str(tmp), safe_serialization=True)
    tmp.replace(out)  # SD.Next never lists a half-written folder
    return out


# --- from the project's .venv ------------------------------------------------------------------------------------


def build_with(install: HostInstall, dest: Path, families: tuple[str, ...] = FAMILIES) -> Path:
    """DEST with the tiny pipelines, built in SD.Next's venv where missing; returns DEST (SD.Next's diffusers_dir)."""
    dest.mkdir(parents=True, exist_ok=True)
    with (dest / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        missing = [f for f in families if not (dest / folder_name(f) / "model_index.json").exists()]
        if missing:
            cmd = [str(install.python), __file__, str(dest), *missing, "--sdnext", str(install.source)]
            env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
            subprocess.run(cmd, check=True, env={**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    return dest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("families", nargs="*", help=f"any of {', '.join(FAMILIES)} (default: all)")
    parser.add_argument("--sdnext", type=Path, required=True, help="the SD.Next folder (holding configs/)")
    args = parser.parse_args(argv)
    if set(args.families) - set(FAMILIES):
        parser.error(f"unknown families: {sorted(set(args.families) - set(FAMILIES))}")
    args.dest.mkdir(parents=True, exist_ok=True)
    for family in args.families or FAMILIES:
        print(f"{family}: {build(args.dest, family, args.sdnext)}", file=sys.stderr)


if __name__ == "__main__":
    main()
