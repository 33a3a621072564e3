"""Prompt text -> TokenColumns with the loaded model's own tokenizer (the token counter's path).

Columns come from the text wrapper's `tokenize_line` (modules/sd_hijack_clip.py:
TextConditionalModel.tokenize_line), so emphasis, BREAK, comma backtracking, textual-inversion
embeddings and long prompts land exactly where the cond tensor has them: column 77*c + 1 + j. The chunks are
read by ae_lib.chunks, as ComfyUI's are.
"""

from __future__ import annotations

import inspect
from typing import Any

from modules import prompt_parser, shared

from ae_lib.chunks import Embedded, chunk_columns
from ae_lib.tokens import TokenColumn, TokenRule
from ae_webui import hosts, pipeline_prompts


def text_wrapper(sd_model: Any) -> Any:
    """The host's text wrapper with tokenize_line (ae_webui.hosts)."""
    return hosts.current().text_wrapper(sd_model)


def token_rule(sd_model: Any) -> TokenRule:
    """SD1: the reference's slice. SD2 (reference normalize_eot) and SDXL: prompt tokens only."""
    return TokenRule.REFERENCE if hosts.current().is_sd1(sd_model) else TokenRule.PROMPT_ONLY


def _decoder(wrapper: Any):
    tokenizer = getattr(wrapper, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "convert_ids_to_tokens"):
        return lambda i: tokenizer.convert_ids_to_tokens(int(i))
    from modules import sd_hijack_open_clip  # OpenCLIP wrappers use open_clip's module-level tokenizer

    return lambda i: sd_hijack_open_clip.tokenizer.decoder.get(int(i), "?")


def _entries(chunk: Any) -> list[int | Embedded]:
    """A PromptChunk's tokens, each textual-inversion vector (chunk.fixes) as an Embedded entry."""
    entries: list[int | Embedded] = [int(t) for t in chunk.tokens]
    for fix in chunk.fixes:
        name, length = fix.embedding.name, int(fix.embedding.vectors)
        for k in range(length):
            j = fix.offset + 1 + k
            if j < len(entries):
                entries[j] = Embedded(int(chunk.tokens[j]), name if k == 0 else "", k == length - 1)
    return entries


def columns_for_text(text: str, sd_model: Any = None) -> list[TokenColumn]:
    """One TokenColumn per column of the cond this text encodes to (no AND, no prompt editing in `text`)."""
    wrapper = text_wrapper(sd_model or shared.sd_model)
    chunks, _ = wrapper.tokenize_line(text)
    return chunk_columns([_entries(chunk) for chunk in chunks], _decoder(wrapper), int(wrapper.id_end))


def first_subprompt(prompt: str) -> str:
    """With AND, A&E works on each image's first sub-prompt (its main cond row); README "AND"."""
    indexes, flat, _ = prompt_parser.get_multicond_prompt_list([prompt])
    return flat[indexes[0][0][0]] if indexes and indexes[0] else prompt


def _takes_use_old_scheduling(fn: Any) -> bool:
    """A1111/Forge/Classic: (prompts, base_steps, hires_steps=None, use_old_scheduling=False); Neo has no 4th."""
    try:
        return "use_old_scheduling" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def schedule_texts(prompt: str, steps: int) -> list[tuple[int, str]]:
    """(end_at_step, text) segments of the first sub-prompt's prompt-editing schedule, as the host computes it."""
    text = first_subprompt(prompt)
    schedule = prompt_parser.get_learned_conditioning_prompt_schedules
    if _takes_use_old_scheduling(schedule):
        use_old = bool(getattr(shared.opts, "use_old_scheduling", False))
        schedules = schedule([text], steps, None, use_old)
    else:
        schedules = schedule([text], steps, None)
    return [(int(end), str(t)) for end, t in schedules[0]]


def columns_for_prompt(prompt: str) -> list[TokenColumn]:
    """The token table's view: the first sub-prompt at the start of its schedule."""
    if hosts.samples_through_pipeline():  # the host encodes prompts for its diffusers pipeline (SD.Next)
        return pipeline_prompts.columns_for_prompt(prompt)
    return columns_for_text(schedule_texts(prompt, 1)[0][1])
