"""The README's demo command works and shows A&E raising the subjects' scores."""

from __future__ import annotations

import pytest
from PIL import Image

from ae_demo.__main__ import main
from ae_demo.run import sample
from ae_lib.objectives import OBJECTIVES


def test_demo_writes_the_figure_and_prints_both_runs(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["--steps", "8", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Random weights" in text and "with A&E" in text and "without" in text
    assert Image.open(out).size[0] > 300


def test_ae_raises_every_subjects_final_score():
    plain = sample("a cat and a frog", "cat, frog", 20, 0, use_ae=False)
    excited = sample("a cat and a frog", "cat, frog", 20, 0, use_ae=True)
    assert len(plain.scores) == len(excited.scores) == 10  # the first half of 20 steps
    assert all(a > b for a, b in zip(excited.scores[-1], plain.scores[-1], strict=True))
    assert min(excited.scores[-1]) > min(plain.scores[-1]) + 0.1


def test_contrast_separates_the_groups_in_the_demo():
    """The README's Objectives picture: contrast on "red car; blue bird" raises the mean separation."""
    chosen = {"objective": "contrast", "groups": "red car; blue bird"}
    plain = sample("a red car and a blue bird", "", 20, 0, use_ae=False, **chosen)
    moved = sample("a red car and a blue bird", "", 20, 0, use_ae=True, **chosen)
    assert plain.labels == moved.labels == ["red", "car", "blue", "bird"]
    assert moved.last_maps.shape[0] == 4  # one map per group token
    mean = [sum(run.scores[-1]) / 4 for run in (plain, moved)]
    assert mean[1] > mean[0] + 0.01, mean


@pytest.mark.parametrize("objective", [n for n, k in OBJECTIVES.items() if k.takes_groups])
def test_the_demo_runs_every_objective_that_takes_groups(objective):
    """Its plain run evaluates through the engine alone (divide once needed grids only `step` asked for)."""
    for use_ae in (False, True):
        run = sample("a red car and a blue bird", "", 4, 0, use_ae=use_ae, objective=objective,
                     groups="red car; blue bird")
        assert run.last_maps.shape[0] == len(run.labels) == len(run.scores[-1]) > 0
