"""The token table in the script's accordion: the prompt's tokens at their columns, click to pick subjects,
shift-click (or click in groups mode) to build groups.

Python side: `table_payload(prompt)` tokenizes with the loaded model (ae_webui.tokenize) and returns the JSON
that javascript/attend_excite.js renders; `build_token_table` creates the gradio parts and wires them.
No HTTP route: JS clicks a hidden button whose event reads the prompt box (`_js`), runs `table_payload` unqueued
(so a running generation does not hold the table back) and hands the JSON to the renderer (`.then(_js=...)`).

Each selectable column carries the Subjects item that selects exactly it under ae_lib.tokens.map_subjects:
the word for the last piece of a word ("frog"), "word#k" for its k-th repeat, the column index otherwise
(non-final pieces of a split word, numbers, punctuation). The payload builder checks that round trip itself.
A group's words are subject items too (ae_lib.targets), so the same item goes into the Groups box.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ae_lib.tokens import TokenColumn, map_subjects, prompt_words, split_spec

__all__ = ["TokenTableUI", "attach", "build_token_table", "payload_for", "subject_refs", "table_payload"]

logger = logging.getLogger("attend_excite")

ElemId = Callable[[str], str]
ColumnsFn = Callable[[str], Sequence[TokenColumn]]
PAYLOAD_VERSION = 1
_TAB = re.compile(r"^[A-Za-z0-9_]+$")


# --- payload (host-free) -------------------------------------------------------------------------------------


def _is_plain_word(word: str) -> bool:
    """A word that a spec can name as itself: split_spec keeps it whole and it reads as neither index nor #k."""
    return not word.isdigit() and "#" not in word and split_spec(word) == [word]


def _candidate_refs(tokens: Sequence[TokenColumn]) -> dict[int, str]:
    refs: dict[int, str] = {}
    seen: dict[str, int] = {}
    for word, cols in prompt_words(tokens):
        seen[word] = seen.get(word, 0) + 1
        for col in cols[:-1]:
            refs[col] = str(col)  # a non-final piece of a split word: only its index selects it
        nth = seen[word]
        refs[cols[-1]] = (word if nth == 1 else f"{word}#{nth}") if _is_plain_word(word) else str(cols[-1])
    for t in tokens:  # e.g. a word cut off by a chunk boundary never reaches word_end
        if t.selectable and t.column not in refs:
            refs[t.column] = str(t.column)
    return dict(sorted(refs.items()))


def _selects(tokens: Sequence[TokenColumn], ref: str, column: int) -> bool:
    result = map_subjects(tokens, ref)
    return result.ok and result.columns == [column]


def subject_refs(tokens: Sequence[TokenColumn]) -> dict[int, str]:
    """{column: the Subjects item that map_subjects maps to exactly that column} for every selectable column."""
    refs = _candidate_refs(tokens)
    if not refs:
        return refs
    everything = map_subjects(tokens, ", ".join(refs.values()))
    if everything.ok and everything.columns == list(refs):
        return refs  # one call checks them all; per-item checks only when something is off
    for column, ref in refs.items():
        if not _selects(tokens, ref, column):
            logger.debug("token table: %r does not select column %d, using the index", ref, column)
            refs[column] = str(column)
    return refs


def _item(t: TokenColumn, ref: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"c": t.column, "k": t.kind, "t": t.text, "w": t.word_end}
    if ref is not None:
        item["r"] = ref
    return item


def _items(tokens: Sequence[TokenColumn], refs: dict[int, str]) -> list[dict[str, Any]]:
    """One item per column, except that a run of padding becomes one item with its length "n"."""
    items: list[dict[str, Any]] = []
    for t in tokens:
        last = items[-1] if items else None
        if t.kind == "pad" and last is not None and last["k"] == "pad":
            last["n"] += 1
            continue
        item = _item(t, refs.get(t.column))
        if t.kind == "pad":
            item["n"] = 1
        items.append(item)
    return items


def payload_for(prompt: str, tokens: Sequence[TokenColumn]) -> dict[str, Any]:
    """The table for JS: items in column order, with the Subjects item ("r") of each selectable column."""
    refs = subject_refs(tokens)
    return {
        "v": PAYLOAD_VERSION,
        "prompt": prompt,
        "error": "",
        "columns": len(tokens),
        "chunks": sum(1 for t in tokens if t.kind == "start"),
        "items": _items(tokens, refs),
    }


def error_payload(prompt: str, message: str) -> dict[str, Any]:
    return {"v": PAYLOAD_VERSION, "prompt": prompt, "error": message, "columns": 0, "chunks": 0, "items": []}


def _default_columns(prompt: str) -> Sequence[TokenColumn]:
    from ae_webui import tokenize  # looked up per call: needs modules.*, and tests replace it

    return tokenize.columns_for_prompt(prompt)


def _host_problem() -> str | None:
    """Why A&E cannot act in this WebUI at all (ae_webui.hosts.standing_problem): the table says so instead."""
    from ae_webui import hosts

    return hosts.standing_problem()


def table_payload(prompt: str, *, columns_fn: ColumnsFn | None = None) -> str:
    """JSON for the token table of `prompt`; a failure becomes a payload with "error" (shown in the table)."""
    prompt = prompt or ""
    try:
        problem = _host_problem() if columns_fn is None else None
        if problem:
            return json.dumps(error_payload(prompt, f"A&E cannot act here: {problem}"), separators=(",", ":"))
        tokens = (columns_fn or _default_columns)(prompt)
        payload = payload_for(prompt, tokens)
    except Exception as e:  # a UI event: report in the table and the log, never break the page
        logger.exception("Attend and Excite: could not tokenize the prompt for the token table")
        payload = error_payload(prompt, f"Could not tokenize the prompt: {e}")
    return json.dumps(payload, separators=(",", ":"))


# --- gradio parts (WebUI glue) ---------------------------------------------------------------------------------


def _container_html(tab: str, ids: dict[str, str]) -> str:
    """The static element JS finds (by class) and renders into; data-* name the tab's parts by elem id."""
    attrs = " ".join(f'data-ae-{k}="{html.escape(v, quote=True)}"' for k, v in sorted(ids.items()))
    return (
        f'<div class="ae-token-table" data-ae-tab="{tab}" {attrs}>'
        '<div class="ae-tt-status">Type a prompt to see its tokens.</div></div>'
    )


@dataclass
class TokenTableUI:
    """The table's gradio parts for one tab; `wire_subjects` connects it to the Subjects textbox."""

    tab: str
    ids: dict[str, str]
    container: Any  # gr.HTML holding the element JS renders into
    prompt: Any  # hidden Textbox: the prompt on its way to Python (filled by the event's _js)
    payload: Any  # hidden Textbox: the JSON on its way back
    button: Any  # hidden Button that JS clicks after prompt edits
    refresh: Any  # visible refresh button

    def wire_subjects(self, subjects: Any) -> None:
        """Name the Subjects box to JS and re-highlight when its value changes (typing, paste, infotext)."""
        self._wire("subjects", subjects, "subjectsChanged")

    def wire_groups(self, groups: Any) -> None:
        """Name the Groups box to JS (shift-clicks write there) and re-highlight when its value changes."""
        self._wire("groups", groups, "groupsChanged")

    def _wire(self, name: str, box: Any, handler: str) -> None:
        if not getattr(box, "elem_id", None):
            msg = f"the {name} textbox needs an elem_id for the token table"
            raise ValueError(msg)
        self.ids[name] = box.elem_id
        self.container.value = _container_html(self.tab, self.ids)  # read when the page config is built
        box.change(
            fn=None,
            inputs=[box],
            outputs=[],
            _js=f"(v) => {{ window.attendExcite?.{handler}({json.dumps(self.tab)}, v); return []; }}",
            queue=False,
            show_progress="hidden",
            api_name=False,
        )


def build_token_table(tab: str, elem_id: ElemId) -> TokenTableUI:
    """Create the table's parts inside the caller's gradio context and wire tokenizing; see module doc."""
    import gradio as gr

    if not _TAB.match(tab):
        msg = f"tab must be a plain name such as 'txt2img', got {tab!r}"
        raise ValueError(msg)
    ids = {name: elem_id(f"token_{name}") for name in ("table", "prompt", "payload", "button", "refresh")}
    with gr.Row(elem_classes=["ae-token-row"]):
        container = gr.HTML(_container_html(tab, ids), elem_id=ids["table"], elem_classes=["ae-token-html"])
        # A plain Button with the WebUI's "tool" look: ToolButton would be wrapped in a Form and leave the row.
        refresh = gr.Button(
            "\U0001f504", elem_id=ids["refresh"], elem_classes=["tool", "ae-token-refresh"], scale=0, min_width=40
        )
    prompt = gr.Textbox(visible=False, elem_id=ids["prompt"])
    payload = gr.Textbox(visible=False, elem_id=ids["payload"])
    button = gr.Button(visible=False, elem_id=ids["button"])
    _wire_tokenize(tab, (button, refresh), prompt, payload)
    return TokenTableUI(tab, ids, container, prompt, payload, button, refresh)


def _on_tokenize(prompt: str) -> str:
    return table_payload(prompt)  # positional-only for gradio, which counts the handler's parameters


def _wire_tokenize(tab: str, triggers: Sequence[Any], prompt: Any, payload: Any) -> None:
    name = json.dumps(tab)
    read_prompt = f"() => [window.attendExcite ? window.attendExcite.promptText({name}) : '']"
    render = f"(p) => {{ window.attendExcite?.render({name}, p); return []; }}"
    for trigger in triggers:
        trigger.click(
            fn=_on_tokenize,
            inputs=[prompt],
            outputs=[payload],
            _js=read_prompt,
            queue=False,  # tokenizing is instant; a queued call would wait for the running generation
            show_progress="hidden",
            api_name=False,
        ).then(fn=None, inputs=[payload], outputs=[], _js=render, queue=False, show_progress="hidden", api_name=False)


def attach(tab: str, elem_id: ElemId, controls: Mapping[str, Any]) -> TokenTableUI:
    """build_token_table + wire_subjects / wire_groups: the call for ae_webui.ui.build's `extra`."""
    table = build_token_table(tab, elem_id)
    table.wire_subjects(controls["subjects"])
    if "groups" in controls:
        table.wire_groups(controls["groups"])
    return table
