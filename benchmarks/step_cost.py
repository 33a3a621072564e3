"""What an altered step costs next to a plain CFG step, and what the A&E pass saves for backward.

A benchmark, not a test: it prints ratios from one run (CPU, fp32, random weights) for (a) the tiny test UNet
(ae_demo.tiny, sd1) and (b) a full-width ldm UNetModel with SD1.5's configuration.

    .venv/bin/python -m benchmarks.step_cost               # tiny + full width (2-9 minutes on 2 shared cores)
    .venv/bin/python -m benchmarks.step_cost --tiny-only   # a few seconds

Times are medians over --repeats rounds (every case once per round, after --warmup rounds), each as a ratio
to the plain step:
  plain CFG step       UNet forward on 2B rows (cond + uncond), no grad: what every sampling step costs
  ours                 AttendExcite.step at an altered step without refinement: one autograd pass on the B
                       conditional rows, truncated after the last target layer, weights frozen; the update
  ours + checkpoint    the same with AttendExcite(checkpoint=True)
  reference way        benchmarks.reference_way: explicit attention on every layer, full forward on B rows,
                       backward (autograd visits only what the loss depends on), weights as they come
  refinement iteration one engine pass (AttendExcite.evaluate): what each refinement iteration costs
  contrast: altered    the same altered step with the Contrast objective (CONFORM, ae_lib.objectives.contrast)
                       over two groups, with the previous step's maps (kept from the warm-up round)
  contrast: refinement one engine pass with the Contrast objective
  bind: altered        the same altered step with the Bind objective (SynGen, ae_lib.objectives.bind) over the
                       two groups against the other prompt words (it has no refinement)
  divide: altered      the same altered step with the Divide & Bind objective (ae_lib.objectives.divide) over
                       two attribute-subject groups: its pass also keeps every grid finer than the loss grid
                       (the attributes' maps), so it runs to the last of the finest layers
  divide: refinement   one engine pass with the Divide & Bind objective
Saved for backward: distinct storages autograd keeps (saved_tensors_hooks; parameters excluded), as a ratio
to a full-UNet backward (the same A&E pass, untruncated, weights as they come); and one Divide & Bind pass (its
attention down to the finest grid, so it saves far more than A&E's truncated pass).
Projected: (20 plain + 10 altered) / (20 plain) for 20 steps with 10 altered and no refinement.

Forge-style pass, on the same UNet: Forge, Forge Classic, Forge Neo and ComfyUI load the weights and sample
under torch.inference_mode(), so the weights are inference tensors. The same weights are made inference tensors
here (zero-copy, under inference_mode, as such a load makes them) and both steps run inside inference mode:
  plain CFG step       the same forward on 2B rows, under inference_mode
  ours in grad_scope   the altered step inside ae_lib.autograd.grad_scope(unet, clone_norms=True), as the
                       extension runs it there: out of inference mode, every parameter swapped for a normal
                       alias and back (each pass), and norm1/2/3 inputs cloned (forced on; ldm's blocks add
                       residuals out of place, Forge's in place)
  alias swap alone     normal_parameters(unet) in and out, nothing else: what the swap costs per pass
Printed as ratios to that run's own plain steps (Forge-style and A1111-style), and as the Forge-style step over
the A1111-style step (from the medians, and within each round). On a shared machine that difference drowns in
the noise, so the scope's own work is also timed directly: the swap, plus the norm-input clones (timed inside
grad_scope's pre-hook during the timed passes), as a share of the A1111-style step; with the bytes the clones
copy per pass and what autograd keeps with them (vs the A1111-style pass).
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from unittest import mock

import torch
import torch.nn.functional as F
from ldm.modules import attention as ldm_attention
from ldm.modules.diffusionmodules.openaimodel import UNetModel
from torch import nn

import ae_lib.autograd as autograd_module
import ae_lib.capture as capture_module
from ae_demo.tiny import CONTEXT_DIM, make_unet
from ae_lib import AEParams, AttendExcite, AttentionCapture, ImageTarget, Schedule, StepResult
from ae_lib.autograd import grad_scope, normal_parameters
from ae_lib.capture import target_grid
from ae_lib.memory import unet_blocks
from ae_lib.objectives import make
from ae_lib.scores import image_loss, subject_scores
from benchmarks.reference_way import reference_step
from benchmarks.saved import SavedBytes

SD15 = dict(
    image_size=64,
    in_channels=4,
    out_channels=4,
    model_channels=320,
    attention_resolutions=[4, 2, 1],
    num_res_blocks=2,
    channel_mult=(1, 2, 4, 4),
    num_heads=8,
    use_spatial_transformer=True,
    transformer_depth=1,
    context_dim=768,
    legacy=False,
)
SUBJECTS = (2, 5)
GROUPS = ((2, 3), (5, 6))  # the Contrast objective's groups (an attribute with its subject)
TEXT_COLUMNS = tuple(range(1, 76))  # SD1's reference rule: every column but the start and the chunk's last
TIMESTEP = 500.0
STEPS = 50
ALTERED_INDEX = 1  # altered, and no refinement threshold there with the default schedule
MIB = 2**20
TARGETS = {"altered": 0.9, "saved": 0.5, "projected": 1.45}


@dataclass
class Bench:
    """One UNet and everything one altered step needs, at batch `B` (the rows A&E runs on)."""

    unet: torch.nn.Module
    z: torch.Tensor
    context: torch.Tensor
    uncond: torch.Tensor
    engine: AttendExcite = field(init=False)
    engine_ckpt: AttendExcite = field(init=False)
    engine_contrast: AttendExcite = field(init=False)
    engine_divide: AttendExcite = field(init=False)
    engine_bind: AttendExcite = field(init=False)
    last: StepResult | None = None

    def __post_init__(self) -> None:
        params = AEParams(enabled=True, subjects="cat, frog")
        schedule = Schedule.from_params(params, STEPS)
        self.engine = AttendExcite(self.unet, params, schedule)
        self.engine_ckpt = AttendExcite(self.unet, params, schedule, checkpoint=True)
        self.engine_contrast = AttendExcite(self.unet, params, schedule, objective=make("contrast", params))
        self.targets = [ImageTarget(SUBJECTS, TEXT_COLUMNS)] * self.z.shape[0]
        grouped = ImageTarget(tuple(c for g in GROUPS for c in g), TEXT_COLUMNS, groups=GROUPS)
        self.contrast_targets = [grouped] * self.z.shape[0]
        self.engine_divide = AttendExcite(self.unet, params, schedule, objective=make("divide", params))
        bound = ImageTarget(tuple(g[-1] for g in GROUPS), TEXT_COLUMNS, groups=GROUPS)
        self.divide_targets = [bound] * self.z.shape[0]
        self.engine_bind = AttendExcite(self.unet, params, schedule, objective=make("bind", params))
        paired = ImageTarget(tuple(c for g in GROUPS for c in g), TEXT_COLUMNS, groups=GROUPS,
                             prompt_columns=TEXT_COLUMNS)
        self.bind_targets = [paired] * self.z.shape[0]
        self.rows = list(range(self.z.shape[0]))
        self.grid = target_grid((self.z.shape[-2], self.z.shape[-1]))
        self.step_size = schedule.step_sizes[ALTERED_INDEX]
        latent_hw = (self.z.shape[-2], self.z.shape[-1])
        self.divide_grids = self.engine_divide.objective.finer_grids(latent_hw, self.grid, self.divide_targets)

    def run_cond(self, z: torch.Tensor, rows: list[int]) -> torch.Tensor:
        return self.unet(z, torch.full((z.shape[0],), TIMESTEP), context=self.context[rows])

    def plain(self) -> None:
        with torch.no_grad():
            z2 = torch.cat([self.z, self.z])
            self.unet(z2, torch.full((z2.shape[0],), TIMESTEP), context=torch.cat([self.uncond, self.context]))

    def ours(self) -> None:
        self.last = self.engine.step(ALTERED_INDEX, self.z, self.run_cond, self.targets)

    def ours_ckpt(self) -> None:
        self.engine_ckpt.step(ALTERED_INDEX, self.z, self.run_cond, self.targets)

    def refinement(self) -> None:
        self.engine.evaluate(self.z, self.rows, self.run_cond, self.targets, self.grid)

    def contrast(self) -> None:
        self.engine_contrast.step(ALTERED_INDEX, self.z, self.run_cond, self.contrast_targets)

    def contrast_refinement(self) -> None:
        self.engine_contrast.evaluate(self.z, self.rows, self.run_cond, self.contrast_targets, self.grid)

    def bind(self) -> None:
        self.engine_bind.step(ALTERED_INDEX, self.z, self.run_cond, self.bind_targets)

    def divide(self) -> None:
        self.engine_divide.step(ALTERED_INDEX, self.z, self.run_cond, self.divide_targets)

    def divide_refinement(self) -> None:
        args = (self.z, self.rows, self.run_cond, self.divide_targets, self.grid, self.divide_grids)
        self.engine_divide.evaluate(*args)

    def reference(self) -> None:
        reference_step(self.unet, self.z, self.run_cond, self.targets, self.grid, self.step_size)

    def weights_as_they_come(self, capture: AttentionCapture) -> None:
        """The A&E pass and backward without freezing the weights (what a plain implementation does)."""
        leaf = self.z.detach().clone().requires_grad_(True)
        out = None
        with torch.enable_grad():
            with capture.recording(self.grid[0] * self.grid[1]) as rec:
                out = self.run_cond(leaf, self.rows)  # a full pass returns; its output is held until backward
            attention = rec.mean()
            losses = [
                image_loss(subject_scores(attention[b], t.text_columns, t.subjects, self.grid))
                for b, t in enumerate(self.targets)
            ]
            torch.autograd.grad(sum(losses), [leaf])
            del out


def make_bench(unet: torch.nn.Module, context_dim: int, latent: int, batch: int = 1) -> Bench:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(batch, 4, latent, latent, generator=g)
    # randn columns have norm ~sqrt(dim): ~28 at 768, the scale of CLIP's text embeddings.
    context = torch.randn(batch, 77, context_dim, generator=g)
    uncond = torch.randn(batch, 77, context_dim, generator=g)
    return Bench(unet, z, context, uncond)


def _inference_alias(t: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.empty(0, dtype=t.dtype, device=t.device).set_(
            t.untyped_storage(), t.storage_offset(), t.shape, t.stride()
        )


def with_inference_weights(unet: nn.Module) -> nn.Module:
    """The same UNet as a Forge-family host holds it: a copy of the module tree whose parameters and buffers are
    inference tensors (made under torch.inference_mode(), as such a host's load makes them) over the original
    storage. No weight is copied, so both UNets compute with the very same numbers."""
    memo: dict[int, object] = {}
    for p in unet.parameters():
        with torch.inference_mode():
            memo[id(p)] = nn.Parameter(_inference_alias(p), requires_grad=False)
    for b in unet.buffers():
        memo[id(b)] = _inference_alias(b)
    return copy.deepcopy(unet, memo)


@dataclass
class ForgeStyle:
    """The A&E step as a Forge-family host runs it: inference-tensor weights and inputs, sampling in
    inference_mode, the pass inside grad_scope with the alias swap and the norm-input clones."""

    bench: Bench
    swapped: int = 0
    passes: list[list[tuple[int, float]]] = field(default_factory=list)  # per pass: (bytes, seconds) per clone

    @classmethod
    def of(cls, a1111: Bench) -> ForgeStyle:
        unet = with_inference_weights(a1111.unet)
        with torch.inference_mode():
            z, context, uncond = (t.clone() for t in (a1111.z, a1111.context, a1111.uncond))
        return cls(Bench(unet, z, context, uncond))

    @contextmanager
    def scope(self) -> Iterator[torch.Tensor]:
        """What ae_webui's session does at an altered step: the latent cloned inside the scope (a normal tensor).
        Each norm-input clone grad_scope's pre-hook makes is timed and its bytes counted (self.passes)."""
        original, clones = autograd_module._clone_input, []

        def timed(module: nn.Module, args: tuple) -> tuple | None:
            start = time.perf_counter()
            out = original(module, args)
            if out is not None:
                clones.append((out[0].untyped_storage().nbytes(), time.perf_counter() - start))
            return out

        patch = mock.patch.object(autograd_module, "_clone_input", timed)
        with patch, torch.inference_mode(), grad_scope(self.bench.unet, clone_norms=True):
            yield self.bench.z.clone()
        self.passes.append(clones)

    def plain(self) -> None:
        with torch.inference_mode():
            self.bench.plain()

    def ours(self) -> None:
        b = self.bench
        with self.scope() as z:
            b.last = b.engine.step(ALTERED_INDEX, z, b.run_cond, b.targets)

    def evaluate(self) -> None:
        b = self.bench
        with self.scope() as z:
            b.engine.evaluate(z, b.rows, b.run_cond, b.targets, b.grid)

    def swap(self) -> None:
        with torch.inference_mode(), normal_parameters(self.bench.unet) as n:
            self.swapped = n

    def clones(self, last: int) -> tuple[int, int, float]:
        """Of the last `last` passes (the timed ones): clones per pass, bytes per pass, median seconds per pass."""
        passes = self.passes[-last:]
        return len(passes[-1]), sum(b for b, _ in passes[-1]), statistics.median(sum(t for _, t in p) for p in passes)


def build_sd15() -> UNetModel:
    torch.manual_seed(0)
    return UNetModel(**SD15).eval()


def time_cases(cases: dict[str, Callable[[], None]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per run of each case; cases alternate within a round so that drift on a shared machine hits all."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def _counted_probs(meter: SavedBytes) -> Callable:
    """attention_probs, with its saved tensors counted even under the capture's own saved-tensor hooks."""
    original = capture_module.attention_probs

    def probs(*args: object) -> torch.Tensor:
        with meter.counting():
            return original(*args)

    return probs


def measure_saved(bench: Bench, fn: Callable[[], None]) -> SavedBytes:
    meter = SavedBytes(bench.unet)
    with ExitStack() as stack:
        stack.enter_context(meter.labelled(unet_blocks(bench.unet)))
        stack.enter_context(mock.patch.object(capture_module, "attention_probs", _counted_probs(meter)))
        stack.enter_context(meter.counting())
        fn()
    return meter


def saved_bytes(bench: Bench) -> dict[str, SavedBytes]:
    """Run after timing, so every capture already knows its layer count (steady-state passes)."""
    full = AttentionCapture(bench.unet, truncate=False)
    return {
        "full": measure_saved(bench, lambda: bench.weights_as_they_come(full)),
        "truncated": measure_saved(bench, lambda: bench.weights_as_they_come(bench.engine.capture)),
        "ours": measure_saved(bench, bench.refinement),
        "ckpt": measure_saved(bench, lambda: bench.engine_ckpt.evaluate(*_eval_args(bench))),
        "reference": measure_saved(bench, bench.reference),
        "divide": measure_saved(bench, bench.divide_refinement),
    }


def _eval_args(bench: Bench) -> tuple:
    return bench.z, bench.rows, bench.run_cond, bench.targets, bench.grid


def _sdp_forward(self: ldm_attention.CrossAttention, x: torch.Tensor, context=None, mask=None) -> torch.Tensor:
    """ldm CrossAttention with torch's scaled_dot_product_attention, as the WebUI's "sdp" optimisation does."""
    h = self.heads
    context = x if context is None else context
    q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
    b, d = q.shape[0], q.shape[-1] // h
    q, k, v = (t.view(b, -1, h, d).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v)
    return self.to_out(out.transpose(1, 2).reshape(b, -1, h * d))


@contextmanager
def host_attention(kind: str) -> Iterator[None]:
    """ldm: the real class as it is (explicit softmax on CPU); sdp: what the WebUI installs on torch 2."""
    patch = mock.patch.object(ldm_attention.CrossAttention, "forward", _sdp_forward) if kind == "sdp" else nullcontext()
    with patch:
        yield


TIME_LABELS = {
    "plain": "plain CFG step (forward, 2B rows)",
    "ours": "ours: altered step (B rows)",
    "ours_ckpt": "ours + checkpoint",
    "reference": "reference way",
    "refinement": "refinement iteration (1 pass)",
    "contrast": "contrast: altered step",
    "contrast_refinement": "contrast: refinement iteration",
    "bind": "bind: altered step",
    "divide": "divide: altered step",
    "divide_refinement": "divide: refinement iteration",
}


def print_times(samples: dict[str, list[float]]) -> dict[str, float]:
    """Prints median and fastest run; returns each case's median as a ratio to the plain step's median."""
    median = {k: statistics.median(v) for k, v in samples.items()}
    print(f"  {'time':44s}{'median s':>10s}{'min s':>10s}{'x plain':>10s}")
    for key, label in TIME_LABELS.items():
        print(f"  {label:44s}{median[key]:10.3f}{min(samples[key]):10.3f}{median[key] / median['plain']:10.3f}")
    return {k: v / median["plain"] for k, v in median.items()}


def print_saved(saved: dict[str, SavedBytes]) -> float:
    """Prints bytes saved for backward per way; returns ours as a ratio to the full-UNet backward."""
    full = saved["full"].total
    rows = [
        ("full-UNet backward (weights as they come)", full),
        ("truncated pass, weights as they come", saved["truncated"].total),
        ("ours (truncated, weights frozen)", saved["ours"].total),
        ("ours + checkpoint: held after forward", saved["ckpt"].total),
        ("ours + checkpoint: + largest block recomputed", saved["ckpt"].total + saved["ours"].largest_block()),
        ("reference way", saved["reference"].total),
        ("divide: one pass (down to the finest grid)", saved["divide"].total),
    ]
    print(f"  {'saved for backward':44s}{'MiB':>10s}{'':>10s}{'x full':>10s}")
    for label, size in rows:
        print(f"  {label:44s}{size / MIB:10.1f}{'':>10s}{size / full:10.3f}")
    return saved["ours"].total / full


def projected(altered_ratio: float) -> float:
    """20 steps with 10 altered and no refinement, relative to 20 plain steps."""
    return (20 + 10 * altered_ratio) / 20


def report(name: str, bench: Bench, samples: dict[str, list[float]], saved: dict[str, SavedBytes]) -> dict[str, float]:
    z, rounds = bench.z, len(samples["plain"])
    shape = f"latent {z.shape[-2]}x{z.shape[-1]}, batch {z.shape[0]}, context 77x{bench.context.shape[-1]}"
    print(f"\n== {name}: {shape}; {rounds} timed rounds")
    if bench.last is not None:  # the step did real work: a positive loss and a moved latent
        moved = float((bench.last.latent - z).abs().max())
        print(f"  A&E loss at the benchmark latent {bench.last.losses[0]:.4f}, largest latent change {moved:.3g}")
    ratios = print_times(samples)
    saved_ratio = print_saved(saved)
    ways = {"ours": "ours", "ours_ckpt": "ours + checkpoint", "reference": "reference way"}
    print(
        "  projected (20 steps, 10 altered, no refinement): "
        + ", ".join(f"{label} {projected(ratios[key]):.3f}x" for key, label in ways.items())
    )
    return {"altered": ratios["ours"], "saved": saved_ratio, "projected": projected(ratios["ours"])}


def report_forge(forge: ForgeStyle, samples: dict[str, list[float]], saved_a1111: SavedBytes) -> dict[str, float]:
    """The Forge-style rows, as ratios to the same run's plain steps and A1111-style altered step."""
    median = {k: statistics.median(v) for k, v in samples.items()}
    plain = median["forge_plain"]
    print("  Forge-style host, same UNet: weights and inputs as inference tensors, sampling under inference_mode;")
    print("  the altered step inside grad_scope(unet, clone_norms=True): alias swap + norm-input clones every pass")
    print(f"  {'time':44s}{'median s':>10s}{'min s':>10s}{'x plain':>10s}")
    rows = [
        ("forge_plain", "plain CFG step (inference mode, 2B rows)"),
        ("forge_ours", "ours in grad_scope: altered step (B rows)"),
        ("swap", f"alias swap alone (in + out, {forge.swapped} tensors)"),
    ]
    for key, label in rows:
        print(f"  {label:44s}{median[key]:10.4f}{min(samples[key]):10.4f}{median[key] / plain:10.4f}")
    altered = median["forge_ours"] / plain
    vs_a1111 = median["forge_ours"] / median["ours"]
    paired = sorted(f / a for f, a in zip(samples["forge_ours"], samples["ours"], strict=True))
    print(
        f"  Forge-style / A1111-style: altered step {vs_a1111:.3f}x, plain step "
        f"{median['forge_plain'] / median['plain']:.3f}x; alias swap = "
        f"{100 * median['swap'] / median['forge_ours']:.2f}% of the Forge-style altered step"
    )
    print(
        f"  altered step, Forge-style / A1111-style within each round: median {statistics.median(paired):.3f}x "
        f"(rounds {paired[0]:.3f}x to {paired[-1]:.3f}x)"
    )
    count, cloned, clone_s = forge.clones(len(samples["forge_ours"]))
    overhead = median["swap"] + clone_s
    print(
        f"  per pass: alias swap {1000 * median['swap']:.1f} ms + {count} norm-input clones ({cloned / MIB:.1f} MiB) "
        f"{1000 * clone_s:.1f} ms = {1000 * overhead:.1f} ms, {100 * overhead / median['ours']:.2f}% of the "
        "A1111-style altered step"
    )
    saved = measure_saved(forge.bench, forge.evaluate).total
    print(
        f"  saved for backward with the clones: {saved / MIB:.1f} MiB vs {saved_a1111.total / MIB:.1f} MiB "
        f"A1111-style ({saved / saved_a1111.total:.3f}x, {(saved - saved_a1111.total) / MIB:+.1f} MiB)"
    )
    print(f"  projected (20 steps, 10 altered, no refinement): Forge-style ours {projected(altered):.3f}x")
    return {"forge_altered": altered, "forge_vs_a1111": vs_a1111, "forge_overhead": overhead / median["ours"]}


def check_targets(ratios: dict[str, float]) -> None:
    names = {"altered": "altered step <= 0.9 plain", "saved": "saved <= 50% of full", "projected": "projected <= 1.45x"}
    parts = [f"{names[k]}: {'met' if ratios[k] <= v else 'NOT met'} ({ratios[k]:.3f})" for k, v in TARGETS.items()]
    print("targets (full width): " + "; ".join(parts))


def run_model(
    name: str, unet: torch.nn.Module, context_dim: int, args: argparse.Namespace, repeats: int
) -> dict[str, float]:
    bench = make_bench(unet, context_dim, args.latent)
    forge = ForgeStyle.of(bench)
    cases = {
        "plain": bench.plain,
        "ours": bench.ours,
        "ours_ckpt": bench.ours_ckpt,
        "reference": bench.reference,
        "refinement": bench.refinement,
        "contrast": bench.contrast,
        "contrast_refinement": bench.contrast_refinement,
        "bind": bench.bind,
        "divide": bench.divide,
        "divide_refinement": bench.divide_refinement,
        "forge_plain": forge.plain,
        "forge_ours": forge.ours,
        "swap": forge.swap,
    }
    samples = time_cases(cases, args.warmup, repeats)
    saved = saved_bytes(bench)
    ratios = report(name, bench, samples, saved)
    return {**ratios, **report_forge(forge, samples, saved["ours"])}


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{len(os.sched_getaffinity(0))} cores ({cpu}), torch {torch.__version__}, {torch.get_num_threads()} threads"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.step_cost", description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--full", dest="tiny_only", action="store_false", help="tiny and full-width UNet (default)")
    which.add_argument("--tiny-only", dest="tiny_only", action="store_true", help="only the tiny test UNet")
    parser.set_defaults(tiny_only=False)
    parser.add_argument("--latent", type=int, default=32, help="latent height and width (default 32)")
    parser.add_argument(
        "--repeats", type=int, help="timed rounds, the median is reported (default: 10 tiny, 5 full width)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--attention", choices=("ldm", "sdp"), default="ldm", help="the host's attention")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    print(f"machine: {machine()}; fp32, CPU; host attention: {args.attention}; {args.warmup} warm-up round(s)")
    with host_attention(args.attention):
        run_model("tiny UNet (ae_demo.tiny sd1)", make_unet("sd1"), CONTEXT_DIM, args, args.repeats or 10)
        if not args.tiny_only:
            start = time.perf_counter()
            unet = build_sd15()
            print(f"\n(built the SD1.5-architecture UNet in {time.perf_counter() - start:.0f} s)")
            ratios = run_model("full-width SD1.5 UNet", unet, SD15["context_dim"], args, args.repeats or 5)
            check_targets(ratios)


if __name__ == "__main__":
    main()
