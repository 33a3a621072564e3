"""Tiny random-weight diffusers pipelines from the real classes, saved to a folder every diffusers venv loads.

Run as a script in a diffusers venv: `python tiny_pipe.py KIND FOLDER BPE_GZ` (KIND: sd1, sd2, sdxl; BPE_GZ: the
real CLIP BPE merges from open-clip-torch, `bpe_simple_vocab_16e6.txt.gz`). Same seed, same weights every time.
128 px images: an 16x16 latent, attention grid 4x4 (latent/4), as 512 px SD is 64 -> 16.
"""

from __future__ import annotations

import gzip
import json
import sys
from functools import lru_cache
from pathlib import Path

import torch

SIZE = 128


def bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


@lru_cache(maxsize=2)
def write_vocab(bpe_gz: str, folder: str) -> tuple[Path, Path]:
    """CLIP's vocab.json / merges.txt from the BPE merges, the way CLIP's SimpleTokenizer builds its vocabulary."""
    with gzip.open(bpe_gz) as f:
        merges = f.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return out / "vocab.json", out / "merges.txt"


def tokenizer(bpe_gz: str, work: Path, pad: str):
    from transformers import CLIPTokenizer

    vocab, merges = write_vocab(bpe_gz, str(work / "_bpe"))
    return CLIPTokenizer(str(vocab), str(merges), pad_token=pad, model_max_length=77)


def text_encoder(width: int, seed: int, projection: int | None = None):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(hidden_size=width, intermediate_size=2 * width, num_attention_heads=2, num_hidden_layers=2,
                            vocab_size=49408, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407,
                            pad_token_id=1, projection_dim=projection or width)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()


def vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    blocks = 4  # 8x: vae_scale_factor 2 ** (4 - 1)
    return AutoencoderKL(block_out_channels=(8,) * blocks, down_block_types=("DownEncoderBlock2D",) * blocks,
                         up_block_types=("UpDecoderBlock2D",) * blocks, latent_channels=4, norm_num_groups=4,
                         layers_per_block=1, sample_size=SIZE)


def unet(kind: str):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(1)
    common = dict(sample_size=SIZE // 8, in_channels=4, out_channels=4, layers_per_block=1, norm_num_groups=8,
                  block_out_channels=(16, 32, 32))
    if kind == "sd1":
        model = UNet2DConditionModel(down_block_types=("CrossAttnDownBlock2D",) * 3,
                                     up_block_types=("CrossAttnUpBlock2D",) * 3, cross_attention_dim=32,
                                     attention_head_dim=2, **common)
    elif kind == "sd2":
        model = UNet2DConditionModel(down_block_types=("CrossAttnDownBlock2D",) * 3,
                                     up_block_types=("CrossAttnUpBlock2D",) * 3, cross_attention_dim=32,
                                     attention_head_dim=(2, 4, 4), use_linear_projection=True, **common)
    else:  # SDXL's layout: no attention at full resolution, text_time conditioning, two encoders' widths
        model = UNet2DConditionModel(down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                                     up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                                     cross_attention_dim=64, attention_head_dim=(2, 4, 4), use_linear_projection=True,
                                     addition_embed_type="text_time", addition_time_embed_dim=8,
                                     projection_class_embeddings_input_dim=8 * 6 + 32, **common)
    with torch.no_grad():  # zero-initialised output projections would make every block an identity
        g = torch.Generator().manual_seed(2)
        for p in model.parameters():
            if p.dim() > 1 and not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def build(kind: str, folder: Path, bpe_gz: str) -> Path:
    from diffusers import PNDMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    if kind == "sdxl":
        pipe = StableDiffusionXLPipeline(vae=vae(), text_encoder=text_encoder(32, 3),
                                         text_encoder_2=text_encoder(32, 4, projection=32),
                                         tokenizer=tokenizer(bpe_gz, folder.parent, "<|endoftext|>"),
                                         tokenizer_2=tokenizer(bpe_gz, folder.parent, "!"), unet=unet(kind),
                                         scheduler=scheduler)
    else:
        pad = "<|endoftext|>" if kind == "sd1" else "!"
        pipe = StableDiffusionPipeline(vae=vae(), text_encoder=text_encoder(32, 3),
                                       tokenizer=tokenizer(bpe_gz, folder.parent, pad), unet=unet(kind),
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


if __name__ == "__main__":
    build(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
    print("built", sys.argv[2])
