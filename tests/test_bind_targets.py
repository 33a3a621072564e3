"""The Bind objective's targets (ae_lib.targets): groups are required and each must pair an attribute with its
subject; the subjects and labels are the group words; a split word brings all its pieces; the other prompt words
are every prompt token without start, end or padding; and Bind's step size stays constant over the window."""

from __future__ import annotations

import logging

import torch
from PIL import Image

from ae_demo.tiny import cond_runner, make_context, prompt_columns
from ae_lib import AEParams, Schedule, StepDriver, TokenRule
from ae_lib.heatmap import render_heatmap_grid
from ae_lib.objectives import OBJECTIVES, make
from ae_lib.objectives.bind import Bind, group_words
from ae_lib.params import SPECS
from ae_lib.targets import build_target

PROMPT = "a glittery chartreuse iguana and a teal capybara, on grass"  # glit|tery char|tre|use igu|ana cap|y|bara


def _build(groups: str, subjects: str = "", objective: str = "bind"):
    return build_target(prompt_columns(PROMPT), subjects, groups, TokenRule.REFERENCE, objective)


def test_bind_is_registered_and_a_choice_of_the_objective_field():
    assert OBJECTIVES["bind"] is Bind and isinstance(make("bind", AEParams()), Bind)
    assert "bind" in SPECS["objective"].choices


def test_groups_give_subjects_labels_and_every_piece_of_split_words():
    found = _build("glittery chartreuse iguana; teal capybara", subjects="grass")  # the subject spec is not read
    assert found.ok, found.message()
    target = found.target
    assert target.groups == ((3, 6, 8), (11, 14))
    assert target.subjects == (3, 6, 8, 11, 14)
    assert target.labels == ("glittery", "chartreuse", "iguana", "teal", "capybara")
    assert target.group_labels == ("glittery chartreuse iguana", "teal capybara")
    assert target.group_pieces == (((2, 3), (4, 5, 6), (7, 8)), ((11,), (12, 13, 14)))
    assert group_words(target) == [[(2, 3), (4, 5, 6), (7, 8)], [(11,), (12, 13, 14)]]


def test_other_prompt_words_are_every_prompt_token_without_start_end_or_padding():
    target = _build("teal capybara").target
    tokens = prompt_columns(PROMPT)
    assert target.prompt_columns == tuple(range(1, 18))  # 'a', 'and', ',' and 'on' included, as the code's list
    assert tokens[0].kind == "start" and tokens[18].kind == "end" and tokens[19].kind == "pad"


def test_columns_by_index_bring_the_word_that_ends_there():
    target = _build("3 8; 2 14").target  # 3 ends 'glittery', 2 is its first piece only
    assert target.group_pieces == (((2, 3), (7, 8)), ((2,), (12, 13, 14)))


def test_bad_groups_are_named():
    assert _build("").errors == ["the bind objective needs groups, e.g. 'red car; blue bird'"]
    (error,) = _build("capybara; teal iguana").errors
    assert error == "group 'capybara' has no attribute with its subject: name both, as in 'red car'"
    assert _build("teal zebra").errors == ["group 'teal zebra': 'zebra' is not a word of the prompt"]
    assert _build("teal capybara; teal iguana").errors == [
        "'teal' is in two groups ('teal capybara' and 'teal iguana')"
    ]


def test_other_objectives_keep_their_targets():
    excite = _build("", subjects="iguana, capybara", objective="excite").target
    assert excite.subjects == (8, 14) and excite.groups == () and excite.group_pieces == ()


def test_step_size_is_constant_for_bind_and_decays_for_the_paper():
    params = AEParams(enabled=True, step_size=20.0)
    schedule = Schedule.from_params(params, 50)
    sizes = [make("bind", params).step_size(schedule.plan(i)) for i in schedule.altered_steps()]
    assert sizes == [20.0] * 25
    paper = [make("excite", params).step_size(schedule.plan(i)) for i in schedule.altered_steps()]
    assert paper[0] == 20.0 and paper[-1] < 18.0 and paper == list(schedule.step_sizes[:25])


def test_a_run_through_the_step_driver_reports_each_word_and_draws_its_map(sd1_unet, caplog):
    """10 steps (window 0-4): the window record holds one score and one map per group word, the end-of-window
    line names them, and the maps grid renders; no threshold report (Bind has none)."""
    params = AEParams(enabled=True, objective="bind", groups="glittery chartreuse iguana; teal capybara")
    driver = StepDriver(sd1_unet, params, 10, print, "", keep_maps=True, objective="bind")
    target = _build(params.groups).target
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(7))
    run = cond_runner(sd1_unet, make_context(1))
    with caplog.at_level(logging.INFO, logger="attend_and_excite"):
        for index in range(10):
            driver.step(index, x, None, run, [target])
    assert driver.altered == [0, 1, 2, 3, 4]
    image = driver.images[0]
    assert image.labels == target.labels and len(image.scores) == 5
    assert image.first_maps.shape == image.last_maps.shape == (5, 4, 4)
    line = next(r.message for r in caplog.records if r.message.startswith("A&E image 1:"))
    assert line.startswith("A&E image 1: glittery ") and "capybara" in line and "threshold" not in line
    grid = render_heatmap_grid(Image.new("RGB", (64, 64)), image.labels, image.first_maps, image.last_maps,
                               scores_first=image.first_scores, scores_end=image.scores)
    assert grid.width > 5 * 8
