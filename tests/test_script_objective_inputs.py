"""The objective and its groups through the WebUI stand-in (tests/webui_stub): UI controls, paste-back, the API
(named and positional, the old positional count included), X/Y/Z, per-image messages and reporting.

Written against the registry (ae_lib.objectives.OBJECTIVES), so a new objective needs no change here. The real
hosts check the same inputs in tests/realhost/test_api.py (test_objective_*).
"""

from __future__ import annotations

import numpy as np
import pytest
from modules import infotext_utils, scripts
from modules.api import api

from ae_lib.objectives import DEFAULT, OBJECTIVES
from ae_lib.params import FIELD_NAMES, FIELDS, SPECS, AEParams
from ae_webui import xyz
from tests import webui_host as host
from tests.webui_host import ae, run_txt2img

PROMPT = "a red cat and a blue frog"
FAST = {"prompt": PROMPT, "steps": 4, "width": 64, "height": 64}
NO_REFINE = {"thresholds": "none", "max_refine": 0}  # "none": as infotext writes it back
# An objective that takes groups, and one that takes none: whichever the registry has.
GROUPED = next(n for n, kind in OBJECTIVES.items() if kind.takes_groups)
UNGROUPED = next(n for n, kind in OBJECTIVES.items() if not kind.takes_groups)
EVERY_GROUPED = [n for n, kind in OBJECTIVES.items() if kind.takes_groups]


@pytest.fixture(autouse=True)
def _host():
    host.start()


def info_value(info: str, key: str) -> str | None:
    return infotext_utils.parse_generation_parameters(info).get(key)


def test_the_parameter_model_offers_every_registered_objective():
    assert SPECS["objective"].choices == tuple(OBJECTIVES)
    assert SPECS["objective"].default == DEFAULT
    assert FIELD_NAMES[-2:] == ("objective", "groups"), "new fields go last: old positional callers keep working"


def test_the_accordion_has_an_objective_dropdown_with_every_objective_and_a_groups_box():
    script = host.script()
    by_id = {c.elem_id.removeprefix("script_txt2img_attend_and_excite_"): c for c in script.controls
             if getattr(c, "elem_id", None)}
    assert list(by_id["objective"].choices) in (list(OBJECTIVES), [(n, n) for n in OBJECTIVES])
    assert by_id["objective"].value == DEFAULT and by_id["groups"].value == ""
    assert GROUPED in by_id["groups"].placeholder


@pytest.mark.parametrize("objective", EVERY_GROUPED)
def test_groups_act_and_the_info_names_the_objective_and_its_measure(objective):
    plain, _ = run_txt2img(None, **FAST)
    params = ae("", objective=objective, groups="red cat; blue frog", **NO_REFINE)
    processed, _ = run_txt2img(params, **FAST)
    info = processed.infotexts[0]
    assert info_value(info, "AE objective") == objective and info_value(info, "AE groups") == "red cat; blue frog"
    assert info_value(info, "AE measure") == OBJECTIVES[objective].measure, info
    assert "AE subjects" not in info, "no subjects given: none written (paste-back gives an empty box)"
    assert info_value(info, "AE error") is None, info
    labels = [item.split(" ")[0] for item in info_value(info, "AE scores").split(", ")]
    words = ["cat", "frog"] if OBJECTIVES[objective].uses_subjects else ["red", "cat", "blue", "frog"]  # divide: TVs
    assert labels == words, info
    assert not np.array_equal(processed.latents, plain.latents), "the objective moved the latent"


def test_the_default_objective_writes_no_objective_and_no_measure():
    processed, _ = run_txt2img(ae("cat, frog", **NO_REFINE), **FAST)
    info = processed.infotexts[0]
    assert info_value(info, "AE scores") and "AE measure" not in info and "AE objective" not in info, info
    assert "AE groups" not in info


@pytest.mark.parametrize(("values", "message"), [
    ({"objective": GROUPED, "groups": "red dog; blue frog"}, "group 'red dog': 'dog' is not a word of the prompt"),
    ({"objective": GROUPED, "groups": "red cat; cat frog"}, "'cat' is in two groups"),
    ({"objective": GROUPED, "groups": ""}, f"the {GROUPED} objective needs groups"),
    ({"objective": UNGROUPED, "groups": "red cat"}, f"the {UNGROUPED} objective takes no groups"),
])
def test_a_bad_group_is_named_in_the_info_and_the_image_is_made(values, message):
    plain, _ = run_txt2img(None, **FAST)
    processed, _ = run_txt2img(ae("cat, frog", **NO_REFINE, **values), **FAST)
    error = info_value(processed.infotexts[0], "AE error") or ""
    assert error.startswith("image 1 ran without A&E: ") and message in error, processed.infotexts[0]
    assert len(processed.images) == 1 and np.array_equal(processed.latents, plain.latents)
    assert "AE scores" not in processed.infotexts[0] and "AE measure" not in processed.infotexts[0]


def test_paste_back_restores_objective_and_groups():
    params = ae("", objective=GROUPED, groups="red cat; blue frog", **NO_REFINE)
    info = run_txt2img(params, **FAST)[0].infotexts[0]
    fields = host.script().infotext_fields
    pasted = infotext_utils.apply_paste(fields, info)
    expected = [getattr(params, f.name) for f in FIELDS if f.name == "enabled" or f.infotext]
    assert [pasted[c] for c, _ in fields] == expected
    # An image of the paper's objective pastes the objective back to the default and clears Groups.
    paper = run_txt2img(ae("cat, frog", **NO_REFINE), **FAST)[0].infotexts[0]
    pasted = infotext_utils.apply_paste(fields, paper)
    names = [f.name for f in FIELDS if f.name == "enabled" or f.infotext]
    values = dict(zip(names, [pasted[c] for c, _ in fields], strict=True))
    assert (values["objective"], values["groups"], values["subjects"]) == (DEFAULT, "", "cat, frog")


def _api(args: list | dict) -> str:
    request = {**FAST, "seed": 1, "alwayson_scripts": {"attend and excite": {"args": args}}}
    return api.text2imgapi(request).infotexts[0]


def test_positional_api_old_count_keeps_its_meaning_and_new_count_takes_the_new_fields():
    old = [True, "cat, frog", 0.5, "none", 15.0, 0]  # an older caller: fewer values than fields
    named = _api([{"enabled": True, "subjects": "cat, frog", "thresholds": "none", "step_size": 15, "max_refine": 0}])
    assert _api(old) == named and "AE objective" not in named
    full = [getattr(ae("", objective=GROUPED, groups="red cat; blue frog", **NO_REFINE), n) for n in FIELD_NAMES]
    info = _api(full)
    assert info_value(info, "AE objective") == GROUPED and info_value(info, "AE groups") == "red cat; blue frog"
    assert info == _api([{"enabled": True, "objective": GROUPED, "groups": "red cat; blue frog", **NO_REFINE}])
    bad = _api([{"enabled": True, "subjects": "cat", "objective": "nope"}])
    assert "Objective: 'nope' is not one of " + ", ".join(OBJECTIVES) in info_value(bad, "AE error")


def _xyz_module():
    return next(d.module for d in scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py")


def test_xyz_objective_axis_offers_the_objectives_and_groups_is_text():
    module = _xyz_module()
    options = {o.label.removeprefix(xyz.PREFIX): o for o in module.axis_options if o.label.startswith(xyz.PREFIX)}
    assert options["Objective"].choices() == list(OBJECTIVES)
    assert options["Groups"].choices is None and options["Groups"].type is str
    with pytest.raises(RuntimeError, match="'nope' is not one of"):
        module.parse_values(options["Objective"], "", dropdown=["nope"])
    p = host.txt2img_p(ae("cat, frog", **NO_REFINE), **FAST)
    cells = module.run_cells(p, options["Objective"], [DEFAULT, GROUPED], options["Groups"], ["", "red cat; blue frog"])
    infos = [c.infotexts[0] for c in cells]
    assert [info_value(i, "AE objective") for i in infos] == [None, GROUPED, None, GROUPED], infos
    assert info_value(infos[3], "AE measure") == OBJECTIVES[GROUPED].measure, infos[3]
    assert f"the {GROUPED} objective needs groups" in info_value(infos[1], "AE error"), infos[1]
    assert f"the {DEFAULT} objective takes no groups" in info_value(infos[2], "AE error"), infos[2]
    assert info_value(infos[0], "AE error") is None and info_value(infos[0], "AE scores"), infos[0]


@pytest.mark.parametrize("objective", EVERY_GROUPED)
def test_attention_map_grid_for_a_grouped_objective(objective):
    params = ae("", objective=objective, groups="red cat; blue frog", save_maps=True, **NO_REFINE)
    processed, _ = run_txt2img(params, **FAST)
    assert len(processed.images) == 2, "the image, then its maps grid"
    paper, _ = run_txt2img(ae("cat, frog", save_maps=True, **NO_REFINE), **FAST)
    # One column per label: four group words (two group subjects where the objective reads subjects) against two
    # subjects, at the same cell size.
    wider = processed.images[1].width > paper.images[1].width
    assert wider if not OBJECTIVES[objective].uses_subjects else processed.images[1].width == paper.images[1].width
    assert processed.images[1].height == paper.images[1].height


def test_every_field_but_the_new_ones_has_its_old_position():
    old = ("enabled", "subjects", "steps_altered", "thresholds", "step_size", "max_refine", "smoothing", "sigma",
           "attention_res", "hires", "save_maps")
    assert FIELD_NAMES[: len(old)] == old
    assert AEParams().objective == DEFAULT
