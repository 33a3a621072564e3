"""Random-weight SD1.5 and SDXL single-file checkpoints that the unmodified Forge recognises, loads and samples.

Runs in Forge's own venv with Forge's `backend` importable (`--forge` names the Forge folder); nothing here is
imported at module top beyond the standard library, so the project's `.venv` can import `build_with()`.

What Forge requires (repositories/huggingface_guess/huggingface_guess/model_list.py, detection.py):
- The model family is guessed from the UNet keys alone: SD15 needs `model_channels == 320`, `context_dim == 768`,
  conv projections and no `label_emb`; levels, res blocks and transformer depths are read from the state dict.
- SDXL and its distilled variants are all handled by backend/diffusion_engine/sdxl.py:StableDiffusionXL
  (`isinstance(guess, model_list.SDXL)`); they need `model_channels == 320`, `context_dim == 2048`,
  `adm_in_channels == 2816`, linear projections and one of a few exact *input* transformer depth lists. The
  smallest one is KOALA_700M's `[0, 2, 5]`: one res block per level, attention at levels 1 and 2 only, like SDXL.
  Channel multipliers, output depths and the middle depth are not checked, so everything stays 320 wide.
- Text encoders and VAE are built full-size from backend/huggingface/<repo>/ configs (backend/loader.py:
  load_huggingface_component), so their weights are full-size too; random is fine.

    python tests/realhost/checkpoints_forge.py DEST [sd15|sdxl ...] --forge PATH/TO/forge
"""

from __future__ import annotations

import argparse
import fcntl
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the project's .venv has no torch; these run in Forge's venv only
    import torch

    from tests.realhost.hostenv import HostInstall

VERSION = 8  # bump when the weights or the layout change: the file name carries it, so caches rebuild


@dataclass(frozen=True)
class Family:
    repo: str  # folder under forge/backend/huggingface/ whose configs Forge builds the components from
    guess: str  # the huggingface_guess class the UNet must be recognised as
    unet: dict[str, Any]  # the UNet config, in the form detection.py:detect_unet_config returns it
    clip_l: str  # key prefix of CLIP-L (transformers layout)
    clip_g: str | None  # key prefix of CLIP-G (OpenCLIP layout), SDXL only
    seed: int
    # Scales every attn2.to_k. SD1.5's context is a LayerNorm output, so unit-scale keys give near-uniform
    # attention over 75 columns (A&E scores ~0.03 at 256 px); x3 gives ~0.4 / ~0.07 for "cat" / "frog", one
    # subject neglected as in a trained model. SDXL's context skips the final LayerNorm and is peaked already.
    key_gain: float = 1.0
    # Scales conv_in: with random weights the latent barely moves the features the attention reads, so A&E's
    # gradient (and its effect) would be far weaker than in a trained model.
    input_gain: float = 1.0
    # Scales every attn2.to_v. SDXL's context is a random CLIP's penultimate hidden state (no final LayerNorm:
    # ~250 per token); at unit scale the values that attn2 adds drown the latent's features, so attention hardly
    # depends on the latent and A&E cannot move it (scores the same on every seed, step size 20 or 0).
    value_gain: float = 1.0


# A&E works on the cross-attention at latent/4 (16x16 at 512 px). SD1.5 keeps its block layout — attention at
# levels 0-2 and the middle, none at level 3 — with one res block per level and all levels 320 wide.
SD15 = Family(
    repo="runwayml/stable-diffusion-v1-5",
    guess="SD15",
    unet={
        "model_channels": 320,
        "in_channels": 4,
        "out_channels": 4,
        "channel_mult": [1, 1, 1, 1],
        "num_res_blocks": [1, 1, 1, 1],
        "transformer_depth": [1, 1, 1, 0],
        "transformer_depth_middle": 1,
        "transformer_depth_output": [1, 1, 1, 1, 1, 1, 0, 0],
        "context_dim": 768,
        "use_linear_in_transformer": False,
        "adm_in_channels": None,
        "num_heads": 8,
        "num_head_channels": -1,
    },
    clip_l="cond_stage_model.transformer.",
    clip_g=None,
    seed=1500,
    key_gain=3.0,
    input_gain=4.0,
)
# SDXL: three levels (latent, /2, /4); attention at levels 1 and 2 and the middle (which runs at latent/4).
SDXL = Family(
    repo="stabilityai/stable-diffusion-xl-base-1.0",
    guess="KOALA_700M",
    unet={
        "model_channels": 320,
        "in_channels": 4,
        "out_channels": 4,
        "channel_mult": [1, 1, 1],
        "num_res_blocks": [1, 1, 1],
        "transformer_depth": [0, 2, 5],
        "transformer_depth_middle": 1,
        "transformer_depth_output": [0, 0, 1, 1, 1, 1],
        "context_dim": 2048,
        "use_linear_in_transformer": True,
        "adm_in_channels": 2816,
        "num_classes": "sequential",
        "num_heads": -1,
        "num_head_channels": 64,
    },
    clip_l="conditioner.embedders.0.transformer.",
    clip_g="conditioner.embedders.1.model.",
    seed=2000,
    key_gain=0.6,  # with value_gain: "cat" ~0.4, "frog" ~0.14, and one A&E step lifts "frog" by ~0.1
    input_gain=4.0,
    value_gain=0.02,
)
# SDXL with SDXL's own input depths [0, 0, 2, 2, 10, 10] (two res blocks per level): the only SDXL layout Forge Neo's
# huggingface_guess recognises (it has no KOALA entry). Still 320 wide, one transformer layer per output block and in
# the middle; the ten-layer stacks run at latent/4.
SDXL_FULL_DEPTH = Family(
    repo="stabilityai/stable-diffusion-xl-base-1.0",
    guess="SDXL",
    unet={
        **SDXL.unet,
        "num_res_blocks": [2, 2, 2],
        "transformer_depth": [0, 0, 2, 2, 10, 10],
        "transformer_depth_output": [0, 0, 0, 1, 1, 1, 1, 1, 1],
    },
    clip_l=SDXL.clip_l,
    clip_g=SDXL.clip_g,
    seed=2500,
    key_gain=SDXL.key_gain,
    input_gain=SDXL.input_gain,
    value_gain=SDXL.value_gain,
)
FAMILIES = {"sd15": SD15, "sdxl": SDXL, "sdxl_full_depth": SDXL_FULL_DEPTH}


def file_name(family: str) -> str:
    return f"ae-random-{family}-v{VERSION}.safetensors"


# --- Forge's backend, imported with the paths modules/paths.py would set up ------------------------------------
def _import_forge(forge: Path | None) -> None:
    if forge is not None:
        for sub in ("", "repositories/huggingface_guess", "packages_3rdparty"):
            path = str((forge / sub).resolve())
            if path not in sys.path:
                sys.path.insert(0, path)
    argv = sys.argv
    sys.argv = [argv[0], "--always-cpu"]  # backend/args.py parses sys.argv at import; without a GPU it must say so
    try:
        import backend.nn.unet  # noqa: F401
        import huggingface_guess  # noqa: F401
    finally:
        sys.argv = argv


def _hf_dir(repo: str) -> Path:
    import backend  # a namespace package: no __file__

    return Path(next(iter(backend.__path__))) / "huggingface" / repo


# --- weights ---------------------------------------------------------------------------------------------------
def _randn(shape: tuple[int, ...], seed: int, name: str) -> torch.Tensor:
    """Seeded per tensor name, so a tensor's values do not depend on which others exist or their order."""
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    return torch.randn(shape, generator=g)


def _fill(module: torch.nn.Module, prefix: str, seed: int) -> Iterator[tuple[str, torch.Tensor]]:
    """Random weights for a module built on the meta device: (name, fp16 tensor) in state-dict order.

    Linear/conv weights get std 1/sqrt(fan_in) so activations keep unit scale through depth. Nothing is zero:
    ldm zero-initialises output convs and proj_out (training starts from identity), which in a random model would
    make every block a no-op (ae_demo/tiny.py).
    """
    import torch

    for mod_name, mod in module.named_modules():
        for p_name, p in mod.named_parameters(recurse=False):
            name = f"{mod_name}.{p_name}" if mod_name else p_name
            noise = _randn(tuple(p.shape), seed, name)
            if isinstance(mod, torch.nn.GroupNorm | torch.nn.LayerNorm):
                value = (1 + 0.05 * noise) if p_name == "weight" else 0.05 * noise
            elif isinstance(mod, torch.nn.Embedding):
                value = 0.02 * noise
            elif p_name == "weight" and p.dim() > 1:
                value = noise / (p[0].numel() ** 0.5)  # fan_in
            elif p_name == "logit_scale":
                value = torch.full(p.shape, 4.6055)  # ln(100), as IntegratedCLIP
            else:  # biases
                value = 0.02 * noise
            yield prefix + name, value.to(torch.float16).contiguous()


def _sane_final_norm(sd: dict[str, torch.Tensor], key: str, seed: int) -> None:
    """A LayerNorm output has zero mean per token; Forge's emphasis rescales by the mean of the whole cond
    (backend/text_processing/emphasis.py:EmphasisOriginal), so a zero-mean bias would divide by ~0."""
    import torch

    sd[key + "weight"] = (1 + 0.1 * _randn(sd[key + "weight"].shape, seed, key + "w")).to(torch.float16)
    sd[key + "bias"] = (0.1 + 0.2 * _randn(sd[key + "bias"].shape, seed, key + "b")).to(torch.float16)


# What detection.py:detect_unet_config adds to every ldm-style UNet config (minus keys the UNet ignores).
UNET_COMMON = {"use_checkpoint": False, "use_spatial_transformer": True}


def _meta_unet(config: dict[str, Any]) -> torch.nn.Module:
    import torch
    from backend.nn.unet import IntegratedUNet2DConditionModel

    with torch.device("meta"):  # the way backend/loader.py builds it, without allocating
        return IntegratedUNet2DConditionModel.from_config({**UNET_COMMON, **config})


def _meta_clip(config_dir: Path, projection: bool) -> torch.nn.Module:
    import torch
    from backend.nn.clip import IntegratedCLIP
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig.from_pretrained(config_dir)
    with torch.device("meta"):
        return IntegratedCLIP(CLIPTextModel, config, add_text_projection=projection)


def _meta_vae(config_dir: Path) -> torch.nn.Module:
    import torch
    from backend.nn.vae import IntegratedAutoencoderKL

    with torch.device("meta"):
        return IntegratedAutoencoderKL.from_config(IntegratedAutoencoderKL.load_config(config_dir))


def _openclip_layout(hf: dict[str, torch.Tensor], prefix: str, layers: int) -> dict[str, torch.Tensor]:
    """transformers CLIP keys -> the OpenCLIP keys of an SGM checkpoint's CLIP-G (the inverse of
    huggingface_guess/utils.py:clip_text_transformers_convert, which Forge runs on load)."""
    import torch

    t = "transformer.text_model."
    out = {
        prefix + "positional_embedding": hf.pop(t + "embeddings.position_embedding.weight"),
        prefix + "token_embedding.weight": hf.pop(t + "embeddings.token_embedding.weight"),
        prefix + "ln_final.weight": hf.pop(t + "final_layer_norm.weight"),
        prefix + "ln_final.bias": hf.pop(t + "final_layer_norm.bias"),
        prefix + "text_projection": hf.pop("transformer.text_projection.weight").t().contiguous(),
        prefix + "logit_scale": hf.pop("logit_scale"),
    }
    rename = {
        "layer_norm1": "ln_1",
        "layer_norm2": "ln_2",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
        "self_attn.out_proj": "attn.out_proj",
    }
    for i in range(layers):
        src, dst = f"{t}encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for y in ("weight", "bias"):
            for a, b in rename.items():
                out[f"{dst}{b}.{y}"] = hf.pop(f"{src}{a}.{y}")
            qkv = [hf.pop(f"{src}self_attn.{p}_proj.{y}") for p in "qkv"]
            out[f"{dst}attn.in_proj_{y}"] = torch.cat(qkv)
    if hf:
        raise ValueError(f"unconverted CLIP-G keys: {sorted(hf)[:5]}")
    return out


def _state_dict(fam: Family) -> dict[str, torch.Tensor]:
    hf = _hf_dir(fam.repo)
    sd = dict(_fill(_meta_unet(fam.unet), "model.diffusion_model.", fam.seed))
    for key in [k for k in sd if k.endswith("attn2.to_k.weight")]:
        sd[key] = sd[key] * fam.key_gain
    conv_in = "model.diffusion_model.input_blocks.0.0.weight"
    sd[conv_in] = sd[conv_in] * fam.input_gain
    for key in [k for k in sd if k.endswith("attn2.to_v.weight")]:
        sd[key] = sd[key] * fam.value_gain
    sd.update(_fill(_meta_vae(hf / "vae"), "first_stage_model.", fam.seed + 1))
    clip_l = dict(_fill(_meta_clip(hf / "text_encoder", projection=False), "", fam.seed + 2))
    _sane_final_norm(clip_l, "transformer.text_model.final_layer_norm.", fam.seed + 2)
    del clip_l["logit_scale"]  # SD1.5 / SDXL files carry neither logit_scale nor a CLIP-L projection
    sd.update({fam.clip_l + k.removeprefix("transformer."): v for k, v in clip_l.items()})
    if fam.clip_g is not None:
        clip_g = dict(_fill(_meta_clip(hf / "text_encoder_2", projection=True), "", fam.seed + 3))
        _sane_final_norm(clip_g, "transformer.text_model.final_layer_norm.", fam.seed + 3)
        sd.update(_openclip_layout(clip_g, fam.clip_g, layers=32))
    return sd


def _check_recognised(sd: dict[str, torch.Tensor], fam: Family) -> None:
    """Run Forge's own guess on the result, and rebuild the UNet from the guessed config: same keys and shapes,
    so the loader will neither reject the file nor drop a weight."""
    import huggingface_guess

    guess = huggingface_guess.guess(sd)
    if type(guess).__name__ != fam.guess:
        raise AssertionError(f"Forge guesses {type(guess).__name__}, expected {fam.guess}: {guess.unet_config}")
    prefix = "model.diffusion_model."
    rebuilt = {prefix + k: tuple(v.shape) for k, v in _meta_unet(guess.unet_config).state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in sd.items() if k.startswith(prefix)}
    if rebuilt != ours:
        raise AssertionError(f"UNet mismatch: {sorted(set(rebuilt) ^ set(ours))[:5]}")


def build_forge(dest: Path, family: str, forge: Path | None = None) -> Path:
    """Write DEST/ae-random-<family>-v<N>.safetensors (fp16, original single-file layout, no yaml)."""
    from safetensors.torch import save_file

    _import_forge(forge)
    fam = FAMILIES[family]
    sd = _state_dict(fam)
    _check_recognised(sd, fam)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / file_name(family)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    # One metadata key only: safetensors writes several in hash-map order, so the bytes would differ per run.
    save_file(sd, str(tmp), metadata={"ae_random": f"{family} v{VERSION} seed {fam.seed}"})
    tmp.replace(path)  # a reader never sees a half-written checkpoint
    return path


# --- from the project's .venv -------------------------------------------------------------------------------------
def build_with(install: HostInstall, dest: Path, families: tuple[str, ...] = ("sd15", "sdxl")) -> dict[str, Path]:
    """The checkpoints in DEST, built in the host's venv where missing (the project's .venv has no torch)."""
    dest.mkdir(parents=True, exist_ok=True)
    with (dest / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; a waiting one then finds the files
        missing = [f for f in families if not (dest / file_name(f)).exists()]
        if missing:
            cmd = [str(install.python), __file__, str(dest), *missing, "--forge", str(install.source)]
            env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
            subprocess.run(cmd, check=True, env=env)
    return {f: dest / file_name(f) for f in families}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("families", nargs="*", help=f"any of {', '.join(FAMILIES)} (default: all)")
    parser.add_argument("--forge", type=Path, help="the Forge folder (holding backend/ and repositories/)")
    args = parser.parse_args(argv)
    unknown = set(args.families) - set(FAMILIES)
    if unknown:
        parser.error(f"unknown families: {sorted(unknown)}")
    for family in args.families or list(FAMILIES):
        t0 = time.monotonic()
        path = build_forge(args.dest, family, args.forge)
        print(f"{family}: {path} ({path.stat().st_size / 1e6:.0f} MB, {time.monotonic() - t0:.1f} s)")


if __name__ == "__main__":
    main()
