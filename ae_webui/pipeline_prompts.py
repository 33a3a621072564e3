"""Prompt text -> the columns of the text embedding a WebUI that encodes prompts itself (SD.Next) passes to a
diffusers pipeline as `prompt_embeds`.

SD.Next (modules/prompt_parser_diffusers.py: get_weighted_text_embeddings) encodes each prompt with compel's
EmbeddingsProvider, not truncated: the text before "TE2:" for the first encoder, parsed into weighted fragments
(`get_prompts_with_weights`: emphasis syntax and textual-inversion names), cut at BREAK into sections, each
section tokenized and chunked into 77 columns (start, up to 75 tokens, end, padding) by compel, the sections'
columns concatenated. SDXL's second encoder sees the same positions (its embedding is concatenated
feature-wise), so its words are read from the first tokenizer, as in the WebUIs. Here the same functions
tokenize the prompt (no encoder runs), so a word lands in the column its embedding has. With the parser set to
"fixed" the pipeline encodes the prompt itself (one 77-column chunk, ae_diffusers.tokens). Prompt scheduling
("[a:b:0.5]") is read per step with SD.Next's own get_prompt_schedule.
"""

from __future__ import annotations

from typing import Any

from ae_diffusers.tokens import prompt_columns
from ae_lib.tokens import TokenColumn

CHUNK = 77


def parser_name(p: Any) -> str:
    from modules import shared

    return str(getattr(p, "prompt_attention", None) or getattr(shared.opts, "prompt_attention", "native"))


def _ids_columns(ids: list[int], tokenizer: Any, base: int) -> list[TokenColumn]:
    """Columns of compel's chunked ids (each chunk: start, tokens, end, padding)."""
    columns: list[TokenColumn] = []
    ended = False
    for j, tid in enumerate(ids):
        column = base + j
        if j % CHUNK == 0:
            columns.append(TokenColumn(column, int(tid), "<start>", "start"))
            ended = False
        elif ended:
            columns.append(TokenColumn(column, int(tid), "", "pad"))
        elif tid == tokenizer.eos_token_id:
            columns.append(TokenColumn(column, int(tid), "<end>", "end"))
            ended = True
        else:
            piece = str(tokenizer.convert_ids_to_tokens(int(tid)))
            columns.append(TokenColumn(column, int(tid), piece.removesuffix("</w>"), "token", piece.endswith("</w>")))
    return columns


def _sections(texts: list[str], weights: list[float]) -> list[tuple[list[str], list[float]]]:
    """Fragments cut at BREAK, as get_weighted_text_embeddings cuts them (empty sections skipped)."""
    out, text, weight = [], [], []
    for t, w in [*zip(texts, weights, strict=True), ("BREAK", -1)]:
        if t == "BREAK":
            if text:
                out.append((text, weight))
            text, weight = [], []
        else:
            text.append(t)
            weight.append(w)
    return out


def compel_columns(pipe: Any, text: str) -> list[TokenColumn]:
    """The columns SD.Next's compel route encodes `text` to, read with the first encoder's tokenizer."""
    from compel.embeddings_provider import EmbeddingsProvider
    from modules import prompt_parser_diffusers as parser

    first = parser.split_prompts(pipe, text)[0]
    texts, weights = parser.get_prompts_with_weights(pipe, first)
    tokenizer = pipe.tokenizer
    provider = EmbeddingsProvider(tokenizer=tokenizer, text_encoder=pipe.text_encoder, truncate=False, device="cpu")
    columns: list[TokenColumn] = []
    for fragments, section_weights in _sections(list(texts), [float(w) for w in weights]):
        ids, _, _ = provider.get_token_ids_and_expand_weights(fragments, section_weights, device="cpu")
        columns += _ids_columns([int(i) for i in ids.tolist()], tokenizer, len(columns))
    return columns


def columns_for_text(pipe: Any, text: str, parser: str) -> list[TokenColumn]:
    """Columns of `text` as this generation's parser encodes it; ValueError where A&E cannot read them."""
    if parser == "fixed":
        return prompt_columns(pipe.tokenizer, text)
    if parser == "xhinker":
        msg = ("the prompt parser 'xhinker' encodes prompts in a layout A&E does not read; choose 'native', "
               "'compel', 'a1111' or 'fixed' in Settings > Text encoder > Prompt attention parser")
        raise ValueError(msg)
    return compel_columns(pipe, text)


def scheduled_texts(prompt: str, steps: int) -> list[str]:
    """The prompt's text at each step of SD.Next's prompt schedule (one entry when nothing is scheduled)."""
    from modules import prompt_parser_diffusers as parser

    texts, _ = parser.get_prompt_schedule(prompt, max(int(steps), 1))
    return [str(t) for t in texts] or [prompt]


def check_width(columns: list[TokenColumn], width: int) -> str | None:
    """SD.Next pads the shorter of prompt and negative with empty 77-column chunks: the embedding may be wider
    than the prompt's own columns by whole chunks, never narrower."""
    if width < len(columns) or (width - len(columns)) % CHUNK:
        return (f"the prompt's encoding has {width} columns where A&E's reading of the prompt has {len(columns)}; "
                "the subjects' columns are unknown")
    return None


def columns_for_prompt(prompt: str) -> list[TokenColumn]:
    """The token table's view: the prompt at the start of its schedule, with the loaded model's tokenizer."""
    from modules import shared

    return columns_for_text(shared.sd_model, scheduled_texts(prompt, 1)[0], parser_name(None))
