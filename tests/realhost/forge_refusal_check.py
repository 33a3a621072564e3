"""Run in Forge's venv: which of Forge's real network classes A&E accepts (ForgeHost's model_problem), built
tiny on the meta device. Prints one JSON object {class name: refusal message or null}.

    <forge venv>/bin/python tests/realhost/forge_refusal_check.py --forge <forge folder>
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

from forge_grad_check import CONFIG, _import_forge


def _engine(name: str, network: object, patch: str | None = None) -> object:
    """A stand-in for a backend/diffusion_engine model: only the attributes model_problem reads. `patch` is put
    into its model_options by Forge's own ModelPatcher method of that name (the layout Forge's features write)."""
    from backend.patcher.base import ModelPatcher

    unet = ModelPatcher.__new__(ModelPatcher)  # its methods, without loading a model
    unet.model = SimpleNamespace(diffusion_model=network)
    unet.model_options = {"transformer_options": {}}  # as ModelPatcher.__init__
    if patch == "set_model_attn2_replace":  # what IP-Adapter does
        unet.set_model_attn2_replace(print, "input", 4, 0)
    elif patch == "set_model_unet_function_wrapper":  # what MultiDiffusion does (tiled_diffusion.py)
        unet.set_model_unet_function_wrapper(print)
    return type(name, (), {"forge_objects": SimpleNamespace(unet=unet)})()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--forge", type=Path, required=True)
    _import_forge(parser.parse_args().forge)

    import torch
    from backend.nn.chroma import IntegratedChromaTransformer2DModel
    from backend.nn.flux import IntegratedFluxTransformer2DModel
    from backend.nn.unet import IntegratedUNet2DConditionModel

    from ae_webui.hosts.forge import model_problem

    dit = dict(in_channels=4, vec_in_dim=8, context_in_dim=8, hidden_size=32, mlp_ratio=2.0, num_heads=2, depth=1,
               depth_single_blocks=1, axes_dim=[4, 6, 6], theta=10_000, qkv_bias=True)
    with torch.device("meta"):
        networks = {
            "Flux": IntegratedFluxTransformer2DModel(**dit, guidance_embed=False),
            "Chroma": IntegratedChromaTransformer2DModel(**dit, guidance_out_dim=32, guidance_hidden_dim=16,
                                                         guidance_n_layers=1),
            "StableDiffusion": IntegratedUNet2DConditionModel(**CONFIG),
        }
    out = {name: model_problem(_engine(name, net)) for name, net in networks.items()}
    unet = networks["StableDiffusion"]
    out["StableDiffusion+attn2 replace"] = model_problem(_engine("StableDiffusion", unet, "set_model_attn2_replace"))
    out["StableDiffusion+forward wrapper"] = model_problem(
        _engine("StableDiffusion", unet, "set_model_unet_function_wrapper")
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
