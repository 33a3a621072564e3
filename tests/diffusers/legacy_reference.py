"""diffusers 0.33.1's StableDiffusionAttendAndExcitePipeline on a tiny model: the end-to-end reference.

Run in the diffusers-0.33.1 venv: `python legacy_reference.py FOLDER OUT.pt DTYPE RULE` (DTYPE float64|float32,
RULE reference|eot; then optionally STEPS and a JSON of other pipeline arguments). The pipeline's defaults
otherwise, with `attn_res=None`, its own size rule (ceil(width / 32), the (16, 16) default at 512 px) for these
128 px images. `eot` applies the official repository's SD2 rule (`normalize_eot`: the re-softmax runs over
columns 1..end-1) in place of the pipeline's fixed [1:-1], the only change to the pipeline.
"""

from __future__ import annotations

import json
import sys

import torch
from common import GUIDANCE, PROMPT, SEED, STEPS, TOKEN_INDICES
from diffusers import StableDiffusionAttendAndExcitePipeline


def eot_rule(pipe, prompt: str) -> None:
    last_idx = len(pipe.tokenizer(prompt)["input_ids"]) - 1  # the official repository's normalize_eot
    original = pipe._compute_max_attention_per_index

    def compute(attention_maps, indices):
        return original(attention_maps[:, :, : last_idx + 1].contiguous(), indices)  # its [1:-1] -> [1:last_idx]

    pipe._compute_max_attention_per_index = compute


def main(folder: str, out: str, dtype: str, rule: str, steps: str = str(STEPS), extra: str = "{}") -> None:
    # transformers 4.51's CLIP builds its causal mask with torch.full(..., finfo(fp64).min) in the default dtype,
    # which overflows fp32: the fp64 runs (here and in the glue's venv) make fp64 the default.
    torch.set_default_dtype(getattr(torch, dtype))
    pipe = StableDiffusionAttendAndExcitePipeline.from_pretrained(folder, safety_checker=None,
                                                                   requires_safety_checker=False)
    pipe = pipe.to(getattr(torch, dtype))
    pipe.set_progress_bar_config(disable=True)
    if rule == "eot":
        eot_rule(pipe, PROMPT)
    # attn_res=None: the pipeline's own size rule, ceil(width / 32) (its default (16, 16) is that rule at 512 px)
    options = {"attn_res": None}
    for key, value in json.loads(extra).items():
        options[key] = {int(i): v for i, v in value.items()} if key == "thresholds" else value
    latents = pipe(PROMPT, token_indices=TOKEN_INDICES, num_inference_steps=int(steps), guidance_scale=GUIDANCE,
                   generator=torch.Generator().manual_seed(SEED), output_type="latent", **options).images
    torch.save(latents, out)
    print("saved", out, tuple(latents.shape), latents.dtype)


if __name__ == "__main__":
    main(*sys.argv[1:])
