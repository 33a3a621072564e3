"""A diffusers pipeline's prompt -> the columns of the text embedding its UNet attends to.

The pipelines tokenize with `padding="max_length", max_length=77, truncation=True` (one 77-column chunk; words
past column 75 are cut off, as diffusers warns). SDXL encodes the prompt with both tokenizers at the same
positions and concatenates the two hidden states feature-wise, so a column is the same word in both; its words
are read from the first tokenizer (CLIP-L), as in the WebUIs. Which columns enter the re-softmax:
- SD1 (one CLIP-L encoder, padded with its end token): the reference's columns (`TokenRule.REFERENCE`).
- SD2 (OpenCLIP, padded with "!") and SDXL (two encoders): the prompt's tokens only (`TokenRule.PROMPT_ONLY`,
  the official repository's `normalize_eot` for SD2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ae_lib.engine import ImageTarget
from ae_lib.scores import TokenRule
from ae_lib.targets import build_target
from ae_lib.tokens import TokenColumn


def token_rule(pipe: Any) -> TokenRule:
    tok = pipe.tokenizer
    sd1 = getattr(pipe, "text_encoder_2", None) is None and tok.pad_token_id == tok.eos_token_id
    return TokenRule.REFERENCE if sd1 else TokenRule.PROMPT_ONLY


def prompt_columns(tokenizer: Any, prompt: str) -> list[TokenColumn]:
    """One TokenColumn per column of the 77 the pipeline encodes (start, tokens, end, padding)."""
    length = int(getattr(tokenizer, "model_max_length", 77) or 77)
    ids = tokenizer(prompt, padding="max_length", max_length=length, truncation=True).input_ids
    columns = [TokenColumn(0, int(ids[0]), "<start>", "start")]
    ended = False
    for j, tid in enumerate(ids[1:], start=1):
        if ended:
            columns.append(TokenColumn(j, int(tid), "", "pad"))
            continue
        if tid == tokenizer.eos_token_id:
            ended = True
            columns.append(TokenColumn(j, int(tid), "<end>", "end"))
            continue
        piece = tokenizer.convert_ids_to_tokens(int(tid))
        columns.append(TokenColumn(j, int(tid), piece.removesuffix("</w>"), "token", piece.endswith("</w>")))
    return columns


def image_targets(
    pipe: Any,
    prompts: list[str],
    subjects: list[str],
    per_prompt: int,
    groups: str | Sequence[str] = "",
    objective: str | None = None,
) -> tuple[list, list[str]]:
    """ImageTargets for the batch (prompt-major, `per_prompt` images each) and the problems found. `groups`: one
    spec for every prompt, or one per prompt."""
    rule = token_rule(pipe)
    targets: list[ImageTarget | None] = []
    problems: list[str] = []
    group_specs = [groups] * len(prompts) if isinstance(groups, str) else list(groups)
    for n, (prompt, spec, group) in enumerate(zip(prompts, subjects, group_specs, strict=True)):
        cols = prompt_columns(pipe.tokenizer, prompt)
        mapped = build_target(cols, spec, group, rule, objective)
        target = mapped.target
        if not mapped.ok:
            where = f"prompt {n + 1}: " if len(prompts) > 1 else ""
            problems.append(where + mapped.message())
        targets.extend([target] * per_prompt)
    return targets, problems
