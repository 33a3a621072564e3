"""Stand-in for modules/prompt_parser.py (v1.10.1): prompt-editing schedules, AND multicond, cond batch
reconstruction (indexed by CFGDenoiser.step) and the emphasis parser used by tokenize_line."""

from __future__ import annotations

import re
from collections import namedtuple
from dataclasses import dataclass, field

import torch

# ---- prompt editing ([a:b:N], [a:N], [a|b]) ------------------------------------------------------------------
# v1.10.1 parses with a lark grammar (schedule_parser). This is a hand-written recursive-descent reader for the same
# constructs; whatever it cannot read falls back to [[steps, prompt]], which is what v1.10.1 does on a LarkError.
# Not covered: the grammar's tolerance of stray brackets next to valid constructs (e.g. "((a][:b:c [d:3]").
_NUMBER = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*")


class _ParseError(Exception):
    pass


@dataclass
class _Emph:  # "(" prompt [":" prompt] ")" or "[" prompt "]": kept verbatim, brackets included
    opening: str
    parts: list
    closing: str


@dataclass
class _Sched:  # [before:after:N] / [after:N]
    before: list | None
    after: list
    number: str
    when: int = 0


@dataclass
class _Alt:  # [a|b|...]
    options: list = field(default_factory=list)


def _read_seq(text: str, i: int, stops: str) -> tuple[list, int]:
    nodes: list = []
    while i < len(text):
        c = text[i]
        if c in stops:
            return nodes, i
        if c == "\\":  # plain text keeps escapes verbatim
            nodes.append(text[i : i + 2])
            i += 2
        elif c == "(":
            first, j = _read_seq(text, i + 1, ":)")
            parts = [first]
            if text[j] == ":":
                second, j = _read_seq(text, j + 1, ")")
                parts += [":", second]
            nodes.append(_Emph("(", parts, ")"))
            i = j + 1
        elif c == "[":
            node, i = _read_bracket(text, i + 1)
            nodes.append(node)
        elif c in ")]|":
            raise _ParseError
        elif c == ":":
            nodes.append(":")
            i += 1
        else:
            j = i
            while j < len(text) and text[j] not in "\\[]():|":
                j += 1
            nodes.append(text[i:j])
            i = j
    if stops:
        raise _ParseError  # unterminated bracket
    return nodes, i


def _read_bracket(text: str, i: int) -> tuple[object, int]:
    parts, seps = [], []
    while True:
        seq, i = _read_seq(text, i, ":|]")
        parts.append(seq)
        if text[i] == "]":
            break
        seps.append(text[i])
        i += 1
    if not seps:
        return _Emph("[", [parts[0]], "]"), i + 1
    if all(s == "|" for s in seps):
        return _Alt(parts), i + 1
    if all(s == ":" for s in seps) and len(seps) <= 2 and all(isinstance(x, str) for x in parts[-1]):
        m = _NUMBER.fullmatch("".join(parts[-1]))
        if m is not None:
            return _Sched(parts[0] if len(seps) == 2 else None, parts[-2], m.group(1)), i + 1
    raise _ParseError


def _collect(nodes: list, steps: int, offsets: tuple[float, float], use_old: bool, res: set) -> None:
    # modules/prompt_parser.py:get_learned_conditioning_prompt_schedules inner collect_steps
    flt_offset, int_offset = offsets
    for n in nodes:
        if isinstance(n, _Emph):
            for part in n.parts:
                if isinstance(part, list):
                    _collect(part, steps, offsets, use_old, res)
        elif isinstance(n, _Alt):
            res.update(range(1, steps + 1))
            for part in n.options:
                _collect(part, steps, offsets, use_old, res)
        elif isinstance(n, _Sched):
            v = float(n.number)
            if use_old:
                v = v * steps if v < 1 else v
            else:
                v = (v - flt_offset) * steps if "." in n.number else (v - int_offset)
            n.when = min(steps, int(v))
            if n.when >= 1:
                res.add(n.when)
            for part in (n.before or [], n.after):
                _collect(part, steps, offsets, use_old, res)


def _at_step(nodes: list, step: int) -> str:
    # modules/prompt_parser.py:get_learned_conditioning_prompt_schedules inner at_step
    out = []
    for n in nodes:
        if isinstance(n, str):
            out.append(n)
        elif isinstance(n, _Emph):
            inner = "".join(p if isinstance(p, str) else _at_step(p, step) for p in n.parts)
            out.append(n.opening + inner + n.closing)
        elif isinstance(n, _Alt):
            out.append(_at_step(n.options[(step - 1) % len(n.options)], step))
        else:
            out.append(_at_step(n.before or [], step) if step <= n.when else _at_step(n.after, step))
    return "".join(out)


def get_learned_conditioning_prompt_schedules(prompts, base_steps, hires_steps=None, use_old_scheduling=False):
    """modules/prompt_parser.py:get_learned_conditioning_prompt_schedules -- per prompt [[end_at_step, text], ...];
    int N = step N, float N = fraction of steps; with hires_steps the offsets move past the first pass."""
    if hires_steps is None or use_old_scheduling:
        offsets, steps = (0.0, 0), base_steps
    else:
        offsets, steps = (1.0, base_steps), hires_steps

    def get_schedule(prompt: str) -> list:
        try:
            tree, _ = _read_seq(prompt, 0, "")
        except (_ParseError, IndexError):
            return [[steps, prompt]]
        res = {steps}
        _collect(tree, steps, offsets, use_old_scheduling, res)
        return [[t, _at_step(tree, t)] for t in sorted(res)]

    promptdict = {prompt: get_schedule(prompt) for prompt in set(prompts)}
    return [promptdict[prompt] for prompt in prompts]


ScheduledPromptConditioning = namedtuple("ScheduledPromptConditioning", ["end_at_step", "cond"])


class SdConditioning(list):
    """modules/prompt_parser.py:SdConditioning -- a list of prompts with width/height/is_negative_prompt."""

    def __init__(self, prompts, is_negative_prompt=False, width=None, height=None, copy_from=None):
        super().__init__()
        self.extend(prompts)
        if copy_from is None:
            copy_from = prompts
        self.is_negative_prompt = is_negative_prompt or getattr(copy_from, "is_negative_prompt", False)
        self.width = width or getattr(copy_from, "width", None)
        self.height = height or getattr(copy_from, "height", None)


def get_learned_conditioning(model, prompts, steps, hires_steps=None, use_old_scheduling=False):
    """modules/prompt_parser.py:get_learned_conditioning -- one model.get_learned_conditioning call per distinct
    prompt, over all its schedule texts; returns [[ScheduledPromptConditioning, ...] per prompt]."""
    res = []
    schedules = get_learned_conditioning_prompt_schedules(prompts, steps, hires_steps, use_old_scheduling)
    cache: dict = {}
    for prompt, schedule in zip(prompts, schedules, strict=False):
        cached = cache.get(prompt)
        if cached is not None:
            res.append(cached)
            continue
        conds = model.get_learned_conditioning(SdConditioning([x[1] for x in schedule], copy_from=prompts))
        cond_schedule = []
        for i, (end_at_step, _) in enumerate(schedule):
            cond = {k: v[i] for k, v in conds.items()} if isinstance(conds, dict) else conds[i]
            cond_schedule.append(ScheduledPromptConditioning(end_at_step, cond))
        cache[prompt] = cond_schedule
        res.append(cond_schedule)
    return res


re_AND = re.compile(r"\bAND\b")  # modules/prompt_parser.py:re_AND
re_weight = re.compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")  # text [":" weight]


def get_multicond_prompt_list(prompts):
    """modules/prompt_parser.py:get_multicond_prompt_list -- split on AND, parse ':weight', dedupe texts."""
    res_indexes = []
    prompt_indexes: dict[str, int] = {}
    prompt_flat_list = SdConditioning(prompts)
    prompt_flat_list.clear()
    for prompt in prompts:
        indexes = []
        for subprompt in re_AND.split(prompt):
            match = re_weight.search(subprompt)
            text, weight = match.groups() if match is not None else (subprompt, 1.0)
            weight = float(weight) if weight is not None else 1.0
            index = prompt_indexes.get(text)
            if index is None:
                index = len(prompt_flat_list)
                prompt_flat_list.append(text)
                prompt_indexes[text] = index
            indexes.append((index, weight))
        res_indexes.append(indexes)
    return res_indexes, prompt_flat_list, prompt_indexes


class ComposableScheduledPromptConditioning:
    """modules/prompt_parser.py:ComposableScheduledPromptConditioning"""

    def __init__(self, schedules, weight=1.0):
        self.schedules: list[ScheduledPromptConditioning] = schedules
        self.weight: float = weight


class MulticondLearnedConditioning:
    """modules/prompt_parser.py:MulticondLearnedConditioning"""

    def __init__(self, shape, batch):
        self.shape: tuple = shape
        self.batch: list[list[ComposableScheduledPromptConditioning]] = batch


def get_multicond_learned_conditioning(model, prompts, steps, hires_steps=None, use_old_scheduling=False):
    """modules/prompt_parser.py:get_multicond_learned_conditioning"""
    res_indexes, prompt_flat_list, _ = get_multicond_prompt_list(prompts)
    learned = get_learned_conditioning(model, prompt_flat_list, steps, hires_steps, use_old_scheduling)
    res = [
        [ComposableScheduledPromptConditioning(learned[i], weight) for i, weight in indexes] for indexes in res_indexes
    ]
    return MulticondLearnedConditioning(shape=(len(prompts),), batch=res)


class DictWithShape(dict):
    """modules/prompt_parser.py:DictWithShape (SDXL conds)"""

    def __init__(self, x, shape=None):
        super().__init__()
        self.update(x)

    @property
    def shape(self):
        return self["crossattn"].shape


def _schedule_index(schedules, current_step: int) -> int:
    # first entry with current_step <= end_at_step, else 0 (same loop in both reconstruct functions)
    for current, entry in enumerate(schedules):
        if current_step <= entry.end_at_step:
            return current
    return 0


def reconstruct_cond_batch(c, current_step):
    """modules/prompt_parser.py:reconstruct_cond_batch -- (B, T, C) for uncond; all rows must have equal T."""
    param = c[0][0].cond
    if isinstance(param, dict):
        res = DictWithShape(
            {k: torch.zeros((len(c), *v.shape), device=v.device, dtype=v.dtype) for k, v in param.items()}
        )
        for i, schedule in enumerate(c):
            for k, v in schedule[_schedule_index(schedule, current_step)].cond.items():
                res[k][i] = v
        return res
    res = torch.zeros((len(c), *param.shape), device=param.device, dtype=param.dtype)
    for i, schedule in enumerate(c):
        res[i] = schedule[_schedule_index(schedule, current_step)].cond
    return res


def stack_conds(tensors):
    """modules/prompt_parser.py:stack_conds -- pad shorter rows by repeating their LAST column (in place in the
    list), then stack."""
    token_count = max(x.shape[0] for x in tensors)
    for i in range(len(tensors)):
        if tensors[i].shape[0] != token_count:
            last = tensors[i][-1:].repeat([token_count - tensors[i].shape[0], 1])
            tensors[i] = torch.vstack([tensors[i], last])
    return torch.stack(tensors)


def reconstruct_multicond_batch(c: MulticondLearnedConditioning, current_step):
    """modules/prompt_parser.py:reconstruct_multicond_batch -- conds_list[i] = [(row, weight), ...] and the stacked
    cond rows, image-major then sub-prompt order."""
    param = c.batch[0][0].schedules[0].cond
    tensors, conds_list = [], []
    for composable_prompts in c.batch:
        conds_for_batch = []
        for composable in composable_prompts:
            target = _schedule_index(composable.schedules, current_step)
            conds_for_batch.append((len(tensors), composable.weight))
            tensors.append(composable.schedules[target].cond)
        conds_list.append(conds_for_batch)
    if isinstance(tensors[0], dict):
        stacked = {k: stack_conds([x[k] for x in tensors]) for k in tensors[0]}
        return conds_list, DictWithShape(stacked, stacked["crossattn"].shape)
    return conds_list, stack_conds(tensors).to(device=param.device, dtype=param.dtype)


# ---- emphasis ----------------------------------------------------------------------------------------------
re_break = re.compile(r"\s*\bBREAK\b\s*", re.S)  # modules/prompt_parser.py:re_break
_WEIGHT_CLOSE = re.compile(r":\s*([+-]?[.\d]+)\s*\)")  # ":1.2)" closes a round bracket with a weight


def _attention_tokens(text: str):
    # the token stream of modules/prompt_parser.py:re_attention, scanned by hand: (token, weight-or-None)
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            tok = text[i : i + 2] if i + 1 < len(text) and text[i + 1] in "()[]\\" else "\\"
        elif c in "([)]":
            tok = c
        elif c == ":":
            m = _WEIGHT_CLOSE.match(text, i)
            if m is not None:
                yield m.group(0), m.group(1)
                i = m.end()
                continue
            tok = ":"
        else:
            j = i
            while j < len(text) and text[j] not in "\\()[]:":
                j += 1
            tok = text[i:j]
        yield tok, None
        i += len(tok)


def parse_prompt_attention(text: str) -> list[list]:
    """modules/prompt_parser.py:parse_prompt_attention -- [[fragment, weight], ...]; (x) x1.1, [x] /1.1,
    (x:w) xw, escapes \\( \\) \\[ \\] \\\\, 'BREAK' -> ['BREAK', -1]; unclosed brackets still apply; runs of equal
    weight merged."""
    res: list[list] = []
    round_brackets: list[int] = []
    square_brackets: list[int] = []

    def multiply_range(start: int, multiplier: float) -> None:
        for pos in range(start, len(res)):
            res[pos][1] *= multiplier

    for tok, weight in _attention_tokens(text):
        if tok.startswith("\\"):
            res.append([tok[1:], 1.0])
        elif tok == "(":
            round_brackets.append(len(res))
        elif tok == "[":
            square_brackets.append(len(res))
        elif weight is not None and round_brackets:
            multiply_range(round_brackets.pop(), float(weight))
        elif tok == ")" and round_brackets:
            multiply_range(round_brackets.pop(), 1.1)
        elif tok == "]" and square_brackets:
            multiply_range(square_brackets.pop(), 1 / 1.1)
        else:
            for i, part in enumerate(re.split(re_break, tok)):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])
    for pos in round_brackets:
        multiply_range(pos, 1.1)
    for pos in square_brackets:
        multiply_range(pos, 1 / 1.1)
    if len(res) == 0:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res
