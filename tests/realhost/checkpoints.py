"""Tiny random-weight SD1, SD2 and SDXL checkpoints that the unmodified A1111 WebUI loads (no weights download).

Each model is the host's own class (ldm `LatentDiffusion`, sgm `DiffusionEngine`) built from a tiny yaml that
keeps SD's block layout (cross-attention at latent/4), with the real CLIP BPE vocabulary and tiny text towers and
VAE, and saved as `DEST/ae-tiny-<family>.safetensors` with that yaml beside it (A1111 reads a checkpoint's config
from a same-named .yaml: modules/sd_models_config.py:find_checkpoint_config_near_filename).

The build runs in the **host venv's** python, so the state dict has exactly the keys the host's classes expect:

    <host venv>/bin/python tests/realhost/checkpoints.py a1111 DEST --host <webui folder>

From the project's venv, `ensure_a1111(install)` does that once into a cache folder. SD2/SDXL name the OpenCLIP
architecture `ae-tiny-openclip` (support_ext/open_clip/), which the test support extension registers in the host.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from tests.realhost.hostenv import HostInstall

HERE = Path(__file__).resolve().parent
OPEN_CLIP_CONFIGS = HERE / "support_ext" / "open_clip"
OPEN_CLIP_ARCH = "ae-tiny-openclip"  # support_ext/open_clip/ae-tiny-openclip.json
FAMILIES = ("sd1", "sd2", "sdxl")
SEEDS = {"sd1": 1001, "sd2": 1002, "sdxl": 1003}
CLIP_FOLDER = "ae-tiny-clip-l"  # tiny CLIPTextConfig + the real BPE files, beside the checkpoints
VAE_APPROX = Path("VAE-approx") / "vaeapprox-sdxl.pt"  # server.WebUI.prepare copies it to models/VAE-approx/
PROMPT, PROMPT_IDS = "a cat and a frog", [49406, 320, 2368, 537, 320, 11438, 49407]
WIDTH = 64  # text width of every tiny tower; SDXL's context is both towers side by side
TIME_EMBED_OUT = 16  # sgm ConcatTimestepEmbedderND outdim (SDXL's is 256): 3 size inputs x 2 values x this
# modules/safe.py:allowed_zip_names_re: the only entries a .pt zip may hold for the WebUI's restricted loader.
SAFE_ZIP_NAMES = re.compile(r"^([^/]+)/((data/\d+)|version|byteorder|.data/serialization_id|(data\.pkl))$")


# --- the yaml configs ----------------------------------------------------------------------------------------
def _vae(target: str) -> dict[str, Any]:
    """SD's AutoencoderKL (8x down, 4 latent channels) at 32 channels, one res block per level."""
    ddconfig = dict(
        double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 1, 1, 1],
        num_res_blocks=1, attn_resolutions=[], dropout=0.0,
    )
    if target.startswith("sgm."):
        ddconfig["attn_type"] = "vanilla"  # the base config's vanilla-xformers needs xformers
    return {"target": target, "params": {"embed_dim": 4, "monitor": "val/rec_loss", "ddconfig": ddconfig,
                                         "lossconfig": {"target": "torch.nn.Identity"}}}


def _ldm_config(family: str, clip_dir: Path) -> dict[str, Any]:
    """configs/v1-inference.yaml and v2-inference.yaml (512-base, eps), shrunk."""
    unet: dict[str, Any] = dict(
        image_size=32, in_channels=4, out_channels=4, model_channels=32, attention_resolutions=[4, 2, 1],
        num_res_blocks=2, channel_mult=[1, 2, 4, 4], use_spatial_transformer=True, transformer_depth=1,
        context_dim=WIDTH, use_checkpoint=False, legacy=False,
    )
    if family == "sd1":
        unet["num_heads"] = 2
        cond = {"target": "ldm.modules.encoders.modules.FrozenCLIPEmbedder", "params": {"version": str(clip_dir)}}
    else:  # SD2: heads by channel count, linear projections, OpenCLIP's penultimate layer
        unet.update(num_head_channels=16, use_linear_in_transformer=True)
        cond = {"target": "ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder",
                "params": {"arch": OPEN_CLIP_ARCH, "version": None, "freeze": True, "layer": "penultimate"}}
    params = dict(
        linear_start=0.00085, linear_end=0.0120, num_timesteps_cond=1, log_every_t=200, timesteps=1000,
        first_stage_key="jpg", cond_stage_key="txt", image_size=64, channels=4, cond_stage_trainable=False,
        conditioning_key="crossattn", monitor="val/loss_simple_ema", scale_factor=0.18215, use_ema=False,
        unet_config={"target": "ldm.modules.diffusionmodules.openaimodel.UNetModel", "params": unet},
        first_stage_config=_vae("ldm.models.autoencoder.AutoencoderKL"), cond_stage_config=cond,
    )
    return {"model": {"base_learning_rate": 1.0e-4, "target": "ldm.models.diffusion.ddpm.LatentDiffusion",
                      "params": params}}


def _sdxl_config(clip_dir: Path) -> dict[str, Any]:
    """generative-models configs/inference/sd_xl_base.yaml, shrunk: CLIP-L hidden layer + OpenCLIP penultimate
    as context, OpenCLIP's pooled output + three size embeddings as the vector (adm_in_channels must match)."""
    sizes = [
        {"is_trainable": False, "input_key": key, "target": "sgm.modules.encoders.modules.ConcatTimestepEmbedderND",
         "params": {"outdim": TIME_EMBED_OUT}}
        for key in ("original_size_as_tuple", "crop_coords_top_left", "target_size_as_tuple")
    ]
    embedders = [
        {"is_trainable": False, "input_key": "txt", "target": "sgm.modules.encoders.modules.FrozenCLIPEmbedder",
         "params": {"version": str(clip_dir), "layer": "hidden", "layer_idx": 1}},  # penultimate of 2 layers
        {"is_trainable": False, "input_key": "txt", "target": "sgm.modules.encoders.modules.FrozenOpenCLIPEmbedder2",
         "params": {"arch": OPEN_CLIP_ARCH, "version": None, "freeze": True, "layer": "penultimate",
                    "always_return_pooled": True, "legacy": False}},
        *sizes,
    ]
    unet = dict(
        adm_in_channels=WIDTH + 3 * 2 * TIME_EMBED_OUT, num_classes="sequential", use_checkpoint=False,
        in_channels=4, out_channels=4, model_channels=32, attention_resolutions=[4, 2], num_res_blocks=2,
        channel_mult=[1, 2, 4], num_head_channels=16, use_spatial_transformer=True, use_linear_in_transformer=True,
        transformer_depth=[1, 1, 1], context_dim=2 * WIDTH, spatial_transformer_attn_type="softmax", legacy=False,
    )
    denoiser = {
        "target": "sgm.modules.diffusionmodules.denoiser.DiscreteDenoiser",
        "params": {
            "num_idx": 1000,
            "weighting_config": {"target": "sgm.modules.diffusionmodules.denoiser_weighting.EpsWeighting"},
            "scaling_config": {"target": "sgm.modules.diffusionmodules.denoiser_scaling.EpsScaling"},
            "discretization_config": {"target": "sgm.modules.diffusionmodules.discretizer.LegacyDDPMDiscretization"},
        },
    }
    params = dict(
        scale_factor=0.13025, disable_first_stage_autocast=True, denoiser_config=denoiser,
        network_config={"target": "sgm.modules.diffusionmodules.openaimodel.UNetModel", "params": unet},
        conditioner_config={"target": "sgm.modules.GeneralConditioner", "params": {"emb_models": embedders}},
        first_stage_config=_vae("sgm.models.autoencoder.AutoencoderKLInferenceWrapper"),
    )
    return {"model": {"target": "sgm.models.diffusion.DiffusionEngine", "params": params}}


# --- the host's model code -----------------------------------------------------------------------------------
def _use_host(host: Path) -> None:
    """The host's ldm and sgm trees on sys.path, as the WebUI puts them (modules/paths.py)."""
    for repo in ("generative-models", "stable-diffusion-stability-ai"):
        path = host / "repositories" / repo
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is missing: --host must be the WebUI folder with repositories/")
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import pytorch_lightning

    # ldm imports pytorch_lightning.utilities.distributed, gone from the pinned 1.9.4; the WebUI aliases it the
    # same way (modules/initialize_util.py:fix_pytorch_lightning).
    sys.modules.setdefault("pytorch_lightning.utilities.distributed", pytorch_lightning.utilities.rank_zero)
    import open_clip

    if OPEN_CLIP_ARCH not in open_clip.list_models():
        open_clip.add_model_config(OPEN_CLIP_CONFIGS)


@contextmanager
def _clip_without_weights() -> Iterator[None]:
    """ldm/sgm call CLIPTextModel.from_pretrained(folder); the folder has only a config, so build from it (the
    WebUI does the same with a checkpoint that holds the text encoder: sd_disable_initialization.py)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    CLIPTextModel.from_pretrained = classmethod(lambda cls, path, **_: cls(CLIPTextConfig.from_pretrained(path)))
    try:
        yield
    finally:
        del CLIPTextModel.from_pretrained  # back to the inherited PreTrainedModel.from_pretrained


def write_clip_folder(folder: Path) -> Path:
    """A tiny CLIPTextConfig and CLIP's real BPE tokenizer (vocab.json/merges.txt from open_clip's
    bpe_simple_vocab_16e6.txt.gz, built as openai's SimpleTokenizer builds its vocabulary: 49408 entries)."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe
    from transformers import CLIPTextConfig, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    lines = gzip.decompress(Path(default_bpe()).read_bytes()).decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    merges = [tuple(line.split()) for line in lines]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408, len(vocab)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>",
                              model_max_length=77)
    tokenizer.save_pretrained(str(folder))  # tokenizer_config.json + special_tokens_map.json, as the host reads
    CLIPTextConfig(
        vocab_size=49408, hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, projection_dim=WIDTH, hidden_act="quick_gelu",
    ).save_pretrained(str(folder))
    ids = CLIPTokenizer.from_pretrained(str(folder))(PROMPT)["input_ids"]
    assert ids == PROMPT_IDS, ids
    return folder


def _enliven(model: torch.nn.Module, seed: int) -> None:
    """Make a random model behave enough like a trained one for attention to mean something.

    - ldm/sgm zero-initialise output convs and transformer projections (training starts at identity): make every
      all-zero matrix random, or each block is a no-op and cross-attention never reaches the output.
    - Token embeddings with std 4 (init is 0.02), so tokens differ clearly also in the hidden layers SDXL reads
      before any final norm (at unit scale SDXL's attention is flat: scores ~0.2 = 1/5 text columns).
    - Final LayerNorms with random gain ~4 and bias: trained towers give column norms of ~20-30, and a plain
      (1, 0) norm makes every token's mean exactly 0, on which the emphasis renormalisation divides.
    """
    import torch

    g = torch.Generator().manual_seed(seed + 1)

    def randn(shape: torch.Size) -> torch.Tensor:
        return torch.randn(shape, generator=g)

    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1 and not p.any():
                p.copy_(randn(p.shape) * 0.05)
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Embedding) and module.num_embeddings == 49408:
                module.weight.copy_(randn(module.weight.shape) * 4.0)
            if isinstance(module, torch.nn.LayerNorm) and name.endswith(("final_layer_norm", "ln_final")):
                module.weight.copy_(4.0 + randn(module.weight.shape))
                module.bias.copy_(0.5 + randn(module.bias.shape))


def _save_checkpoint(model: torch.nn.Module, path: Path, family: str) -> int:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    # One metadata entry: safetensors writes a dict of several in hash order, which would change the file's bytes.
    save_file(state, str(path), metadata={"ae_tiny_family": family})
    return sum(v.numel() for v in state.values())


def build_a1111(dest: Path, family: str, host: Path | None = None) -> Path:
    """Write DEST/ae-tiny-<family>.safetensors and .yaml (and the shared tiny CLIP folder); returns the checkpoint."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    if host is not None:
        _use_host(host)
    import torch
    import yaml
    from omegaconf import OmegaConf

    dest.mkdir(parents=True, exist_ok=True)
    clip_dir = dest / CLIP_FOLDER
    if family != "sd2" and not (clip_dir / "config.json").exists():
        write_clip_folder(clip_dir)
    config = _sdxl_config(clip_dir) if family == "sdxl" else _ldm_config(family, clip_dir)
    yaml_path = dest / f"ae-tiny-{family}.yaml"
    yaml_path.write_text(yaml.safe_dump(config, sort_keys=False))

    from ldm.util import instantiate_from_config  # the same helper the WebUI's load_model ends in

    torch.manual_seed(SEEDS[family])
    with _clip_without_weights():
        model = instantiate_from_config(OmegaConf.load(yaml_path).model)
    model.eval()
    _enliven(model, SEEDS[family])
    ckpt = dest / f"ae-tiny-{family}.safetensors"
    numel = _save_checkpoint(model, ckpt, family)
    print(f"{family}: {ckpt} ({numel / 1e6:.1f} M values, {ckpt.stat().st_size / 2**20:.1f} MiB)")
    return ckpt


def write_vae_approx(path: Path, host: Path) -> Path:
    """Random weights for the host's own VAEApprox (modules/sd_vae_approx.py), which SDXL previews load from
    models/VAE-approx/vaeapprox-sdxl.pt (else they download it). Re-zipped without the entries torch >= 2.14 adds
    (.format_version, .storage_alignment), which modules/safe.py:check_zip_filenames rejects."""
    import ast

    import torch

    source = (host / "modules" / "sd_vae_approx.py").read_text()
    cls = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "VAEApprox")
    namespace: dict[str, Any] = {"nn": torch.nn, "torch": torch}
    exec(compile(ast.Module([cls], []), "sd_vae_approx.py", "exec"), namespace)  # just the class, not the module
    torch.manual_seed(SEEDS["sdxl"] + 7)
    buffer = io.BytesIO()
    torch.save(namespace["VAEApprox"]().state_dict(), buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            if SAFE_ZIP_NAMES.match(info.filename):
                out.writestr(info, src.read(info))
    torch.load(path, weights_only=True)  # still a valid torch file
    return path


def build_all(dest: Path, host: Path) -> dict[str, float]:
    _use_host(host)
    seconds = {}
    for family in FAMILIES:
        t0 = time.monotonic()
        build_a1111(dest, family)
        seconds[family] = time.monotonic() - t0
    write_vae_approx(dest / VAE_APPROX, host)
    return seconds


# --- from the project's venv: build once into the cache ------------------------------------------------------
def _build_key(install: HostInstall) -> str:
    h = hashlib.sha256()
    for path in (Path(__file__), OPEN_CLIP_CONFIGS / f"{OPEN_CLIP_ARCH}.json"):
        h.update(path.read_bytes())
    h.update(str(install.source).encode())  # the yaml names the host's classes; the venv's pins come from it
    return h.hexdigest()[:12]


def ensure_a1111(install: HostInstall, dest: Path | None = None) -> Path:
    """The three tiny checkpoints for this host, built by its own python once (cached by this file's content)."""
    from tests.realhost.hostenv import CACHE

    dest = dest or CACHE / "ckpt-a1111"
    marker = dest / ".complete"
    key = _build_key(install)
    if marker.exists() and marker.read_text().split()[0] == key:
        return dest
    cmd = [str(install.python), str(Path(__file__)), "a1111", str(dest), "--host", str(install.source)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False,
                            env={**os.environ, "GOMP_SPINCOUNT": "1000", "OMP_WAIT_POLICY": "PASSIVE"})
    if result.returncode != 0:
        raise RuntimeError(f"tiny checkpoint build failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    marker.write_text(f"{key}\n{result.stdout}")
    return dest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build tiny random-weight checkpoints for a real WebUI host.")
    parser.add_argument("kind", choices=["a1111"])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--host", type=Path, default=os.environ.get("AE_HOST_SOURCE"),
                        help="the WebUI folder (with repositories/); default $AE_HOST_SOURCE")
    args = parser.parse_args(argv)
    if args.host is None:
        parser.error("--host (or $AE_HOST_SOURCE) is required")
    seconds = build_all(args.dest.expanduser().resolve(), args.host.expanduser().resolve())
    print("build seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))


if __name__ == "__main__":
    main()
