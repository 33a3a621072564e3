"""Prompt text -> TokenColumns with the loaded model's own tokenizer (the token counter's path).

Columns come from the text wrapper's `tokenize_line` (modules/sd_hijack_clip.py:
TextConditionalModel.tokenize_line), so emphasis, BREAK, comma backtracking, textual-inversion
embeddings and long prompts land exactly where the cond tensor has them: column 77*c + 1 + j.
"""

from __future__ import annotations

import inspect
from typing import Any

from modules import prompt_parser, shared

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


def _chunk_columns(chunk: Any, base: int, id_end: int, decode) -> list[TokenColumn]:
    embedded: dict[int, tuple[str, int]] = {}
    for fix in chunk.fixes:
        name, length = fix.embedding.name, int(fix.embedding.vectors)
        for k in range(length):
            embedded[fix.offset + 1 + k] = (name if k == 0 else "", k == length - 1)
    cols, ended = [TokenColumn(base, int(chunk.tokens[0]), "<start>", "start")], False
    for j, tid in enumerate(chunk.tokens[1:], start=1):
        if j in embedded:
            text, last = embedded[j]
            cols.append(TokenColumn(base + j, int(tid), text, "embedding", last))
        elif int(tid) == id_end:
            cols.append(TokenColumn(base + j, int(tid), "<end>" if not ended else "", "pad" if ended else "end"))
            ended = True
        else:
            piece = str(decode(tid))
            cols.append(TokenColumn(base + j, int(tid), piece.removesuffix("</w>"), "token", piece.endswith("</w>")))
    return cols


def columns_for_text(text: str, sd_model: Any = None) -> list[TokenColumn]:
    """One TokenColumn per column of the cond this text encodes to (no AND, no prompt editing in `text`)."""
    wrapper = text_wrapper(sd_model or shared.sd_model)
    chunks, _ = wrapper.tokenize_line(text)
    decode = _decoder(wrapper)
    columns: list[TokenColumn] = []
    for c, chunk in enumerate(chunks):
        columns += _chunk_columns(chunk, 77 * c, int(wrapper.id_end), decode)
    return columns


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
