"""python -m ae_demo: "a cat and a frog" with and without A&E on tiny random-weight models (CPU, < 1 min)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ae_demo.figure import render
from ae_demo.run import sample
from ae_lib.objectives import DEFAULT, OBJECTIVES


def _scores(labels: list[str], scores: list[float]) -> str:
    return ", ".join(f"{lab} {v:.3f}" for lab, v in zip(labels, scores, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ae_demo", description=__doc__)
    parser.add_argument("--prompt", default="a cat and a frog")
    parser.add_argument("--subjects", default="cat, frog", help="words or column indices, as in the WebUI")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--objective", default=None, help="excite (the paper's, default), contrast, ...")
    parser.add_argument("--groups", default="", help="for objectives that bind words: 'red car; blue bird'")
    parser.add_argument("--output", type=Path, default=Path("outputs/demo_attention.png"))
    args = parser.parse_args(argv)

    print("Random weights: this shows the mechanism (scores, latent updates), not image quality.")
    start = time.perf_counter()
    chosen = {"objective": args.objective, "groups": args.groups}
    plain = sample(args.prompt, args.subjects, args.steps, args.seed, use_ae=False, **chosen)
    excited = sample(args.prompt, args.subjects, args.steps, args.seed, use_ae=True, **chosen)
    labels = plain.labels
    kind = OBJECTIVES[args.objective or DEFAULT]
    name = "A&E" if kind.name == DEFAULT else kind.name
    print(f"prompt {args.prompt!r}, subjects {labels}, {args.steps} Euler steps, seed {args.seed}")
    print(f"objective {kind.name}: each label's {kind.measure} at each altered step")
    print("step | " + " | ".join(f"{'without':>8} {lab:<6}" for lab in labels) + " | "
          + " | ".join(f"{'with ' + name:>8} {lab:<6}" for lab in labels))
    for i, (a, b) in enumerate(zip(plain.scores, excited.scores, strict=True)):
        print(f"{i:4d} | " + " | ".join(f"{v:15.4f}" for v in a) + " | " + " | ".join(f"{v:15.4f}" for v in b))
    final_plain, final_ae = plain.scores[-1], excited.scores[-1]
    print(f"end of the A&E window: without {_scores(labels, final_plain)} | with {name} {_scores(labels, final_ae)}")
    print(f"refinement iterations with {name}: {excited.refine_iterations}")
    rows = [("without", plain.last_maps, final_plain), (f"with {name}", excited.last_maps, final_ae)]
    path = render(args.output, labels, rows)
    print(f"wrote {path} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
