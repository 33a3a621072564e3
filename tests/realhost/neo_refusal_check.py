"""Run in Forge Neo's venv: which of the model families Neo loads A&E accepts (ForgeHost's model_problem), each
checked on Neo's own classes: the diffusion network built on the meta device (Neo's backend/nn), inside Neo's
own UnetPatcher/KModel with the predictor Neo's engine gives it, in a stand-in for the engine that has the
text-engine attributes Neo's engine class sets (read from backend/diffusion_engine/*.py; touching one during
the check fails it). Prints one JSON object.

    <neo venv>/bin/python tests/realhost/neo_refusal_check.py --neo <neo folder>

Output: {"families": {family: {verdict, host_problem, classes, predictor, text_engine_touched, ...}},
"engines": {engine class: {guesses, text_engines {attr: class}, found_text_engine, forge_objects, flags}},
"possible_models": [...], "forge_objects_attributes": [...], "text_classes_with_tokenize_line": [...]}
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import traceback
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# Stable Diffusion UNets as huggingface_guess detects them (detection.py; transformer_depth lists per resblock,
# the output list is consumed from its end). Full size: on the meta device nothing is allocated.
SD15 = dict(in_channels=4, model_channels=320, out_channels=4, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 4, 4],
            num_heads=8, num_head_channels=-1, use_spatial_transformer=True, transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
            transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], transformer_depth_middle=1, context_dim=768,
            use_linear_in_transformer=False, adm_in_channels=None)
SDXL = dict(in_channels=4, model_channels=320, out_channels=4, num_res_blocks=[2, 2, 2], channel_mult=[1, 2, 4],
            num_heads=-1, num_head_channels=64, use_spatial_transformer=True, transformer_depth=[0, 0, 2, 2, 10, 10],
            transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10], transformer_depth_middle=10, context_dim=2048,
            use_linear_in_transformer=True, adm_in_channels=2816, num_classes="sequential")
REFINER = dict(SDXL, model_channels=384, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 4, 4],
               transformer_depth=[0, 0, 4, 4, 4, 4, 0, 0], transformer_depth_middle=4, context_dim=1280,
               transformer_depth_output=[0, 0, 0, 4, 4, 4, 4, 4, 4, 0, 0, 0], adm_in_channels=2560)
MUGEN = dict(SDXL, in_channels=32, out_channels=32)  # model_list.Mugen: SDXL's UNet on a 32-channel latent

# The transformer families as detection.py configures them, at one or two blocks deep.
FLUX = dict(in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=4096, hidden_size=3072, mlp_ratio=4.0,
            num_heads=24, depth=1, depth_single_blocks=1, axes_dim=[16, 56, 56], theta=10_000, patch_size=2,
            qkv_bias=True, guidance_embed=True, txt_ids_dims=[])
FLUX2 = dict(FLUX, in_channels=128, out_channels=128, vec_in_dim=None, context_in_dim=7680, axes_dim=[32, 32, 32, 32],
             mlp_ratio=3.0, theta=2000, patch_size=1, qkv_bias=False, guidance_embed=False, global_modulation=True,
             mlp_silu_act=True, ops_bias=False, default_ref_method="index", ref_index_scale=10.0, txt_ids_dims=[3])
CHROMA = dict(in_channels=64, out_channels=64, context_in_dim=4096, hidden_size=3072, mlp_ratio=4.0, num_heads=24,
              depth=1, depth_single_blocks=1, axes_dim=[16, 56, 56], theta=10_000, patch_size=2, qkv_bias=True,
              in_dim=64, out_dim=3072, hidden_dim=5120, n_layers=5, txt_ids_dims=[], vec_in_dim=None)
LUMINA2 = dict(patch_size=2, in_channels=16, dim=2304, cap_feat_dim=2304, n_layers=1, qk_norm=True, n_heads=24,
               n_kv_heads=8, axes_dims=[32, 32, 32], axes_lens=[300, 512, 512], rope_theta=10000.0,
               ffn_dim_multiplier=4.0)
ZIMAGE = dict(patch_size=2, in_channels=16, dim=3840, cap_feat_dim=2560, n_layers=1, qk_norm=True, n_heads=30,
              n_kv_heads=30, axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512], rope_theta=256.0,
              ffn_dim_multiplier=8.0 / 3.0, z_image_modulation=True, time_scale=1000.0, pad_tokens_multiple=32)
ANIMA = dict(in_channels=16, out_channels=16, patch_spatial=2, patch_temporal=1, model_channels=2048,
             concat_padding_mask=True, crossattn_emb_channels=1024, adaln_lora_dim=256, num_blocks=1, num_heads=16,
             rope_h_extrapolation_ratio=4.0, rope_w_extrapolation_ratio=4.0, rope_t_extrapolation_ratio=1.0)

# family: (engine class in backend/diffusion_engine, the guess it matches, network module, class, config, predictor)
# predictor "scheduler": from the repo's diffusers scheduler (as sd15.py/sdxl.py); "flow": PredictionDiscreteFlow
# (sdxl.py's rectified-flow branch); "engine": the engine's own _get_predictor(), as the other engines call it.
FAMILIES: dict[str, tuple[str, str, str, str, dict, str]] = {
    "SD1.5": ("StableDiffusion", "SD15", "backend.nn.unet", "IntegratedUNet2DConditionModel", SD15, "scheduler"),
    "SDXL": ("StableDiffusionXL", "SDXL", "backend.nn.unet", "IntegratedUNet2DConditionModel", SDXL, "scheduler"),
    "SDXL rectified flow": ("StableDiffusionXL", "SDXL", "backend.nn.unet", "IntegratedUNet2DConditionModel", SDXL,
                            "flow"),
    "SDXL refiner": ("StableDiffusionXLRefiner", "SDXLRefiner", "backend.nn.unet", "IntegratedUNet2DConditionModel",
                     REFINER, "scheduler"),
    "Mugen": ("Mugen", "Mugen", "backend.nn.unet", "IntegratedUNet2DConditionModel", MUGEN, "engine"),
    "Flux": ("Flux", "Flux", "backend.nn.flux", "IntegratedFluxTransformer2DModel", FLUX, "engine"),
    "Flux schnell": ("Flux", "FluxSchnell", "backend.nn.flux", "IntegratedFluxTransformer2DModel",
                     dict(FLUX, guidance_embed=False), "engine"),
    "Flux2 Klein": ("Flux2", "Flux2K4B", "backend.nn.flux", "IntegratedFluxTransformer2DModel", FLUX2, "engine"),
    "Chroma": ("Chroma", "Chroma", "backend.nn.chroma", "IntegratedChromaTransformer2DModel", CHROMA, "engine"),
    "Wan": ("Wan", "WAN21_T2V", "backend.nn.wan", "WanModel", dict(num_layers=1), "engine"),
    "Qwen-Image": ("QwenImage", "QwenImage", "backend.nn.qwen", "QwenImageTransformer2DModel", dict(num_layers=1),
                   "engine"),
    "Lumina 2": ("Lumina2", "Lumina2", "backend.nn.lumina", "NextDiT", LUMINA2, "engine"),
    "Z-Image": ("ZImage", "ZImage", "backend.nn.lumina", "NextDiT", ZIMAGE, "engine"),
    "Anima": ("Anima", "Anima", "backend.nn.anima", "Anima", ANIMA, "engine"),
    "Ernie-Image": ("ErnieImage", "ErnieImage", "backend.nn.ernie", "ErnieImageModel", dict(num_layers=1), "engine"),
    "Krea 2": ("Krea2", "Krea2", "backend.nn.krea", "SingleStreamDiT", dict(layers=1, txtlayers=1), "engine"),
    "PiD": ("PiD", "PiD", "backend.nn.pixeldit.pid", "PidNet", {}, "engine"),
}
SCHEDULER_REPOS = {"SD15": "runwayml/stable-diffusion-v1-5", "SDXL": "stabilityai/stable-diffusion-xl-base-1.0",
                   "SDXLRefiner": "stabilityai/stable-diffusion-xl-refiner-1.0"}


def _import_neo(neo: Path) -> None:
    for path in (neo, neo / "modules_forge" / "packages", ROOT):  # packages: as modules_forge/initialization.py
        sys.path.insert(0, str(path))
    argv, sys.argv = sys.argv, [sys.argv[0], "--cpu"]  # backend/args.py parses sys.argv at import
    try:
        import backend.memory_management  # noqa: F401
    finally:
        sys.argv = argv


def _self_assignments(init: ast.FunctionDef) -> dict[str, Any]:
    """Every `self.<attr> = ...` in an __init__: the class name for `<Class>(...)`, the value for a constant."""
    out: dict[str, Any] = {}
    for node in ast.walk(init):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
            continue
        value = node.value
        if isinstance(value, ast.Call):
            func = value.func
            value = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        else:
            value = value.value if isinstance(value, ast.Constant) else None
        for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
            if isinstance(target, ast.Attribute) and getattr(target.value, "id", None) == "self":
                out[target.attr] = value
    return out


def read_engines(neo: Path) -> dict[str, dict[str, Any]]:
    """Every ForgeDiffusionEngine subclass in backend/diffusion_engine/: its guesses and text-engine attributes."""
    engines = {}
    for path in sorted((neo / "backend" / "diffusion_engine").glob("*.py")):
        for cls in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(cls, ast.ClassDef) or cls.name == "ForgeDiffusionEngine":
                continue
            if not any(isinstance(b, ast.Name) and b.id == "ForgeDiffusionEngine" for b in cls.bases):
                continue
            guesses, assigned = [], {}
            for item in cls.body:
                if isinstance(item, ast.Assign) and getattr(item.targets[0], "id", "") == "matched_guesses":
                    guesses = [e.attr for e in getattr(item.value, "elts", []) if isinstance(e, ast.Attribute)]
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    assigned = _self_assignments(item)
            engines[cls.name] = {
                "file": path.name,
                "guesses": guesses,
                "text_engines": {a: c for a, c in assigned.items() if a.startswith("text_processing_engine")},
                "forge_objects": assigned.get("forge_objects"),  # the class it is made from
                "flags": sorted(a for a in ("is_sd1", "is_sdxl") if assigned.get(a) is True),  # Host.is_sd1 reads
            }
    return engines


def forge_objects_attributes(neo: Path) -> list[str]:
    """What backend/diffusion_engine/base.py's ForgeObjects sets in its __init__ (ae_webui reads .unet)."""
    for cls in ast.parse((neo / "backend" / "diffusion_engine" / "base.py").read_text(encoding="utf-8")).body:
        if isinstance(cls, ast.ClassDef) and cls.name == "ForgeObjects":
            init = next(f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
            return sorted(_self_assignments(init))
    raise SystemExit("backend/diffusion_engine/base.py has no ForgeObjects")


def read_possible_models(neo: Path) -> list[str]:
    """backend/loader.py's possible_models: every engine class Neo's loader can return."""
    for node in ast.parse((neo / "backend" / "loader.py").read_text(encoding="utf-8")).body:
        target = getattr(node, "target", None) or (node.targets[0] if isinstance(node, ast.Assign) else None)
        if getattr(target, "id", "") == "possible_models":
            return [e.id for e in node.value.elts]
    raise SystemExit("backend/loader.py has no possible_models")


def text_classes_with_tokenize_line(neo: Path) -> list[str]:
    """Classes in backend/text_processing/ that define tokenize_line (what ae_webui's find_text_engine needs)."""
    found = []
    for path in sorted((neo / "backend" / "text_processing").glob("*.py")):
        for cls in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(cls, ast.ClassDef) and any(
                isinstance(f, ast.FunctionDef) and f.name == "tokenize_line" for f in cls.body
            ):
                found.append(cls.name)
    return found


class Tripwire:
    """Stands for a text engine: any use of it during the refusal check is recorded (and fails the check)."""

    def __init__(self, attr: str, touched: list[str]) -> None:
        object.__setattr__(self, "_attr", attr)
        object.__setattr__(self, "_touched", touched)

    def __getattr__(self, name: str) -> Any:
        self._touched.append(f"{self._attr}.{name}")
        raise AttributeError(f"the refusal check looked at the text engine ({self._attr}.{name})")


def _predictor(kind: str, guess: Any, guess_name: str, neo: Path) -> tuple[Any, Any]:
    """(diffusers scheduler or None, k_predictor or None), as Neo's engine class passes them to UnetPatcher."""
    from backend.diffusion_engine.base import ForgeDiffusionEngine
    from backend.modules.k_prediction import PredictionDiscreteFlow

    if kind == "scheduler":
        import diffusers

        repo = neo / "backend" / "huggingface" / SCHEDULER_REPOS[guess_name]
        cls_name = json.loads((repo / "model_index.json").read_text())["scheduler"][1]
        return getattr(diffusers, cls_name).from_pretrained(str(repo / "scheduler")), None
    if kind == "flow":
        return None, PredictionDiscreteFlow(guess)
    return None, ForgeDiffusionEngine._get_predictor(SimpleNamespace(model_config=guess))


def build_family(family: str, neo: Path, engines: dict[str, dict[str, Any]], touched: list[str]) -> dict[str, Any]:
    import importlib

    import torch
    from backend.args import dynamic_args
    from backend.patcher.unet import UnetPatcher
    from huggingface_guess import model_list

    engine_name, guess_name, module, cls_name, config, kind = FAMILIES[family]
    guess = getattr(model_list, guess_name)(dict(config))
    guess.model_type = guess.model_type({})
    scheduler, k_predictor = _predictor(kind, guess, guess_name, neo)
    network_cls = getattr(importlib.import_module(module), cls_name)
    with torch.device("meta"):
        network = network_cls.from_config(config) if hasattr(network_cls, "from_config") else network_cls(**config)
    for attr, value in (("storage_dtype", torch.float32), ("computation_dtype", torch.float32)):
        setattr(network, attr, value)
    for attr in ("load_device", "offload_device", "initial_device"):
        setattr(network, attr, torch.device("cpu"))
    if dynamic_args.ops is None:
        dynamic_args.ops = ""  # as the loader leaves it without a quantised format
    patcher = UnetPatcher.from_model(model=network, diffusers_scheduler=scheduler, config=guess,
                                     k_predictor=k_predictor)
    attrs: dict[str, Any] = {"forge_objects": SimpleNamespace(unet=patcher)}
    for attr in engines[engine_name]["text_engines"]:
        attrs[attr] = Tripwire(attr, touched)
    engine = type(engine_name, (), attrs)()
    predictor = patcher.model.predictor
    return {
        "engine": engine_name,
        "network": type(network).__name__,
        "predictor": type(predictor).__name__,
        "prediction_type": getattr(predictor, "prediction_type", None),
        "params_on_meta": all(p.device.type == "meta" for p in network.parameters()),
        "stand_in": engine,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--neo", type=Path, required=True)
    neo = parser.parse_args().neo
    _import_neo(neo)

    from ae_webui.hosts.base import TEXT_ATTRIBUTES
    from ae_webui.hosts.forge import ForgeHost, model_problem

    engines = read_engines(neo)
    tokenizing = text_classes_with_tokenize_line(neo)
    for info in engines.values():  # what ae_webui's find_text_engine would take, in its order
        usable = [a for a in TEXT_ATTRIBUTES if info["text_engines"].get(a) in tokenizing]
        info["found_text_engine"] = usable[0] if usable else None

    shared = ModuleType("modules.shared")  # ForgeHost.problem reads modules.shared.sd_model, nothing else
    sys.modules["modules.shared"] = shared
    families: dict[str, dict[str, Any]] = {}
    for family in FAMILIES:
        touched: list[str] = []
        try:
            result = build_family(family, neo, engines, touched)
        except Exception as error:  # recorded, and the test says which family could not be built
            families[family] = {"built": False, "error": f"{type(error).__name__}: {error}",
                                "trace": traceback.format_exc()[-1500:]}
            continue
        engine = result.pop("stand_in")
        shared.sd_model = engine
        result["verdict"] = model_problem(engine)
        result["host_problem"] = ForgeHost().problem(SimpleNamespace())
        result["text_engine_touched"] = touched
        result["built"] = True
        families[family] = result

    print(json.dumps({
        "families": families,
        "engines": engines,
        "possible_models": read_possible_models(neo),
        "forge_objects_attributes": forge_objects_attributes(neo),
        "text_classes_with_tokenize_line": tokenizing,
    }))


if __name__ == "__main__":
    main()
