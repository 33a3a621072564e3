"""One image's target from the user's specs: its subjects, its groups and the columns of the re-softmax.

Every glue builds its ImageTarget here, so subjects, groups and their messages mean the same in every host.

Groups (README "Objectives"): groups are separated by ';', a group's words as in a subject spec ("red car; blue
bird", "2 3; 6 7", "car#2"). The LAST word of a group is its subject, the words before it its attributes. An
objective says whether it takes groups, needs them and needs pairs (an attribute with its subject). When the
subject spec is empty and groups are given, or the objective reads no subjects (its measure is per group token),
the objective picks the subjects from the groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ae_lib.objectives import DEFAULT, OBJECTIVES, ImageTarget, Objective
from ae_lib.tokens import SubjectResult, TokenColumn, TokenRule, map_subjects, prompt_words, split_spec, text_columns


@dataclass
class TargetResult:
    """The target (None when unusable) and every problem found, in the user's words."""

    target: ImageTarget | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.target is not None and not self.errors

    def message(self) -> str:
        return "; ".join(self.errors)


def split_groups(spec: str) -> list[str]:
    """A groups spec's groups (';'-separated), empty ones dropped."""
    return [g.strip() for g in (spec or "").split(";") if split_spec(g)]


def objective_class(name: str | None) -> type[Objective] | None:
    return OBJECTIVES.get(name or DEFAULT)


def build_target(
    tokens: Sequence[TokenColumn], subjects: str, groups: str, rule: TokenRule, objective: str | None = None
) -> TargetResult:
    """The ImageTarget for one tokenized prompt, or the problems that make it unusable."""
    kind = objective_class(objective)
    if kind is None:
        return TargetResult(errors=[f"unknown objective '{objective}' (known: {', '.join(OBJECTIVES)})"])
    result = TargetResult()
    found_groups = _groups(tokens, groups, kind, result.errors)
    if kind.uses_subjects and (split_spec(subjects) or not found_groups):
        found = map_subjects(tokens, subjects)
        if not found.ok:
            result.errors.append(found.message() if found.errors else "no subjects given")
        for group, label in found_groups:  # a group binds its attributes to its subject: it must be one
            if found.ok and group[-1] not in found.columns:
                result.errors.append(f"group '{label}': its subject '{label.split()[-1]}' is not among the Subjects "
                                     f"({', '.join(found.labels)}); add it there or clear Subjects")
    else:
        found = _subjects_from(tokens, kind.subjects_of(tuple(c for c, _ in found_groups)))
    if result.errors:
        return result
    result.target = ImageTarget(
        tuple(found.columns),
        tuple(text_columns(tokens, rule)),
        tuple(found.labels),
        tuple(c for c, _ in found_groups),
        tuple(label for _, label in found_groups),
        tuple(t.column for t in tokens if t.selectable),
        _pieces(tokens, [c for c, _ in found_groups]),
    )
    return result


def _groups(
    tokens: Sequence[TokenColumn], spec: str, kind: type[Objective], errors: list[str]
) -> list[tuple[tuple[int, ...], str]]:
    """(columns, label) per group, appending each problem to `errors`."""
    texts = split_groups(spec)
    if texts and not kind.takes_groups:
        errors.append(f"the {kind.name} objective takes no groups (got '{'; '.join(texts)}'): clear Groups or "
                      f"choose {' or '.join(n for n, k in OBJECTIVES.items() if k.takes_groups)}")
        return []
    if not texts and kind.needs_groups:
        errors.append(f"the {kind.name} objective needs groups, e.g. 'red car; blue bird'")
        return []
    found: list[tuple[tuple[int, ...], str]] = []
    owner: dict[int, str] = {}
    for text in texts:
        words = map_subjects(tokens, text)
        if words.errors:
            errors.extend(f"group '{text}': {e}" for e in words.errors)
            continue
        if kind.needs_pairs and len(words.columns) < 2:
            errors.append(f"group '{text}' has no attribute with its subject: name both, as in 'red car'")
            continue
        for column, word in zip(words.columns, words.labels, strict=True):
            if column in owner:
                errors.append(f"'{word}' is in two groups ('{owner[column]}' and '{text}')")
            owner[column] = text
        found.append((tuple(words.columns), " ".join(words.labels)))
    return found


def _pieces(tokens: Sequence[TokenColumn], groups: Sequence[Sequence[int]]) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """Per group, per column, every column of the prompt word that ends there (a split word's pieces); a column
    that ends no word (a piece named by its index) stands alone."""
    words = {cols[-1]: tuple(cols) for _, cols in prompt_words(tokens)}
    return tuple(tuple(words.get(c, (c,)) for c in group) for group in groups)


def _subjects_from(tokens: Sequence[TokenColumn], columns: Sequence[int]) -> SubjectResult:
    """Columns picked from the groups, labelled with their whole word (a split word ends at its column)."""
    words = {cols[-1]: text for text, cols in prompt_words(tokens)}
    return SubjectResult(list(columns), [words.get(c, str(c)) for c in columns])
