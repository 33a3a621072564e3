"""Run in Forge's venv: one A&E step on Forge's own UNet class, loaded the way Forge loads it (ForgeOperations
under inference mode, so every weight is an inference tensor), through ForgeHost.grad_scope; and what happens
without its fixes. Writes the weights, inputs and results to OUT; tests/realhost/test_forge_grad.py runs the
same step on the same weights in ldm's UNetModel (what A1111 runs) and compares.

    <forge venv>/bin/python tests/realhost/forge_grad_check.py --forge <forge folder> --out result.pt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = dict(  # SD1.5's block layout at a tiny width: attn2 at latent/1, /2 and /4 and in the middle
    in_channels=4, model_channels=32, out_channels=4, num_res_blocks=1, channel_mult=(1, 2, 4, 4), num_heads=2,
    use_spatial_transformer=True, transformer_depth=[1, 1, 1, 0], transformer_depth_output=[1, 1, 1, 1, 1, 1, 0, 0],
    transformer_depth_middle=1, context_dim=32, use_linear_in_transformer=False,
)


def _import_forge(forge: Path) -> None:
    for path in (forge, forge / "repositories" / "huggingface_guess", forge / "packages_3rdparty", ROOT):
        sys.path.insert(0, str(path))
    argv, sys.argv = sys.argv, [sys.argv[0], "--always-cpu"]  # backend/args.py parses sys.argv at import
    try:
        import backend.operations  # noqa: F401
    finally:
        sys.argv = argv


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--forge", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    _import_forge(args.forge)

    import torch
    from backend.nn.unet import IntegratedUNet2DConditionModel
    from backend.operations import using_forge_operations

    from ae_lib import AEParams, AttendExcite, ImageTarget, Schedule
    from ae_lib.autograd import cloned_norm_inputs, normal_parameters
    from ae_webui.hosts.forge import ForgeHost

    torch.manual_seed(0)
    plain = IntegratedUNet2DConditionModel(**CONFIG).eval()
    with torch.no_grad():
        for p in plain.parameters():  # random, non-zero everywhere (zero-init projections would be a no-op)
            p.copy_(torch.randn_like(p) * 0.2)
    state = {k: v.clone() for k, v in plain.state_dict().items()}
    del plain

    def load() -> torch.nn.Module:
        with torch.inference_mode(), using_forge_operations(device=torch.device("cpu"), dtype=torch.float32):
            unet = IntegratedUNet2DConditionModel(**CONFIG)  # as backend/loader.py:load_huggingface_component
            unet.load_state_dict(state, strict=True)
            return unet.eval()

    forge, broken = load(), load()  # `broken` takes the runs without the fixes
    inference_before = sum(t.is_inference() for t in forge.parameters())
    params_before = {n: (id(t), t.data_ptr()) for n, t in forge.named_parameters()}

    z = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    context = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([600.0])
    target = ImageTarget((2, 5), tuple(range(1, 6)), ("cat", "frog"))
    ae = AEParams(enabled=True, subjects="cat, frog")

    def run_with(unet):
        def run(zr, rows):
            return unet(zr, t.expand(len(rows)), context=context[rows], transformer_options={})

        return run

    def engine(unet):
        return AttendExcite(unet, ae, Schedule.from_params(ae, 10))

    errors = {}
    with torch.inference_mode():  # Forge's situation: sampling under inference mode, inference-tensor weights
        x = z.clone()  # the sampler's latent, an inference tensor
        for name, scope in (("no fix", lambda u: torch.inference_mode(False)),
                            ("aliases only", normal_parameters)):
            try:
                with torch.inference_mode(False), torch.enable_grad(), scope(broken):
                    engine(broken).step(0, x.clone(), run_with(broken), [target])
                errors[name] = None
            except RuntimeError as error:
                errors[name] = str(error).splitlines()[0]
        with cloned_norm_inputs(forge):
            pass  # hooks on and off again: nothing may stay
        host = ForgeHost()
        with host.grad_scope(forge):
            zz = x.clone()
            got = engine(forge).step(0, zz, run_with(forge), [target])
        x.add_(got.latent - zz)  # the write-back, inside inference mode as in Session._step

    params_after = {n: (id(t), t.data_ptr()) for n, t in forge.named_parameters()}
    hooks_left = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in forge.modules())
    checks = {
        "scores": got.scores[0],
        "inference_params_before": inference_before,
        "inference_params_after": sum(t.is_inference() for t in forge.parameters()),
        "params_unchanged": params_before == params_after,
        "hooks_left": hooks_left,
        "errors_without_fixes": errors,
        "sampler_latent_is_inference": x.is_inference(),
    }
    torch.save({"state": state, "z": z, "context": context, "t": t, "latent": got.latent, "written": x.clone(),
                "config": CONFIG, "checks": checks}, args.out)
    print(json.dumps(checks))


if __name__ == "__main__":
    main()
