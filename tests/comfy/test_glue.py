"""The ComfyUI glue without ComfyUI: the package entry, node inputs from the parameter model, token columns,
schedule placement and sampler rules (the real ComfyUI runs them in test_comfyui.py / test_samplers.py)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ae_comfy import samplers
from ae_comfy.inputs import NOT_INPUTS, PARAM_FIELDS, param_inputs, to_params, validate
from ae_comfy.placement import find_slice, locate, whole_run
from ae_comfy.tokens import token_rule
from ae_lib.chunks import chunk_columns
from ae_lib.params import FIELDS
from ae_lib.scores import TokenRule
from ae_lib.steps import CallRule, step_of_call
from ae_lib.tokens import map_subjects, text_columns

ROOT = Path(__file__).resolve().parents[2]
START, END = 49406, 49407
VOCAB = {320: "a</w>", 2368: "cat</w>", 537: "and</w>", 8376: "frog</w>", 1929: "fro", 655: "g</w>", 267: ",</w>"}


def chunk(ids: list[int], pad: int = END) -> list[tuple[int, float]]:
    body = [(START, 1.0), *[(i, 1.0) for i in ids], (END, 1.0)]
    return body + [(pad, 1.0)] * (77 - len(body))


def decode(i: int) -> str:
    return VOCAB.get(i, "x</w>")


def test_the_root_package_is_comfyuis_entry_and_imports_no_webui() -> None:
    """Imported the way ComfyUI does it (a module named after the folder, the folder not on sys.path)."""
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('sd-webui-attend-and-excite', {str(ROOT / '__init__.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m; spec.loader.exec_module(m)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('modules', 'gradio', 'ae_webui', 'ldm', 'sgm'))\n"
        "print(json.dumps([sorted(m.NODE_CLASS_MAPPINGS), m.NODE_DISPLAY_NAME_MAPPINGS, bad]))\n"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd="/", check=True)
    nodes, names, bad = json.loads(out.stdout.strip().splitlines()[-1])
    assert nodes == ["AttendAndExcite", "AttendAndExciteMaps"]
    assert names["AttendAndExcite"] == "Attend and Excite"
    assert bad == []


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_layout_one_engine_two_glues() -> None:
    for path in (ROOT / "ae_lib").glob("*.py"):
        assert not _imports(path) & {"comfy", "server", "ae_comfy", "ae_webui", "folder_paths"}, path
    for path in (ROOT / "ae_comfy").glob("*.py"):
        assert not _imports(path) & {"ae_webui", "modules", "gradio", "backend", "ldm", "sgm"}, path


def test_node_inputs_are_the_parameter_model() -> None:
    required, optional = param_inputs(), param_inputs(optional=True)
    assert list(required) + list(optional) == [f.name for f in FIELDS if f.name not in NOT_INPUTS]
    inputs = required | optional
    for spec in PARAM_FIELDS:
        kind, options = inputs[spec.name]
        assert options["default"] == spec.default
        if spec.choices:
            assert kind == list(spec.choices) and spec.default in kind, spec.name  # a COMBO
        else:
            assert kind == {bool: "BOOLEAN", int: "INT", float: "FLOAT", str: "STRING"}[spec.kind]
        if spec.minimum is not None:
            assert (options["min"], options["max"], options["step"]) == (spec.minimum, spec.maximum, spec.step)
    assert validate({"thresholds": "0:0.05, 0.2:0.5"}) is True
    assert "not 'fraction:threshold'" in str(validate({"thresholds": "0.2-0.5"}))
    with pytest.raises(ValueError, match="Step size"):
        to_params({"step_size": 500.0})
    assert to_params({"subjects": "cat", "max_refine": 3}).max_refine == 3


def test_the_objective_is_a_combo_of_every_objective_and_later_inputs_are_optional() -> None:
    """Every registered objective is offered (a new one needs no change in ae_comfy); the inputs the node gained
    after its first release are optional (ComfyUI refuses a prompt without a required one: an older workflow), and
    without them the node means the paper."""
    from ae_comfy.nodes import AttendAndExcite
    from ae_lib.objectives import DEFAULT, OBJECTIVES

    types = AttendAndExcite.INPUT_TYPES()
    kind, options = types["optional"]["objective"]
    assert set(kind) == set(OBJECTIVES) and options["default"] == DEFAULT == "excite"
    assert types["optional"]["groups"][0] == "STRING"
    assert {"objective", "groups"}.isdisjoint(types["required"])
    first_release = ["subjects", "steps_altered", "thresholds", "step_size", "max_refine", "smoothing", "sigma",
                     "attention_res"]
    assert list(types["required"])[3:] == first_release  # the widget order an old workflow's values follow
    old = {"subjects": "cat", "steps_altered": 0.5, "thresholds": "0:0.05", "step_size": 20.0, "max_refine": 20,
           "smoothing": True, "sigma": 0.5, "attention_res": 0}
    params = to_params(old)
    assert (params.objective, params.groups) == ("excite", "")
    with pytest.raises(ValueError, match="Objective: 'nope' is not one of"):
        to_params({**old, "objective": "nope"})


def test_token_chunks_to_columns_long_prompts_and_embeddings() -> None:
    first = chunk([320, 2368, 537, 320, 1929, 655])  # a cat and a fro g
    columns = chunk_columns([first], decode, END)
    assert [c.kind for c in columns[:9]] == ["start", "token", "token", "token", "token", "token", "token", "end",
                                              "pad"]
    found = map_subjects(columns, "cat, frog")
    assert found.ok and found.columns == [2, 6]  # a split word selects its last piece
    assert text_columns(columns, TokenRule.REFERENCE) == list(range(1, 76))
    assert text_columns(columns, TokenRule.PROMPT_ONLY) == [1, 2, 3, 4, 5, 6]
    # a second chunk: its position j is column 77 + j
    second = chunk([320, 8376])
    columns = chunk_columns([chunk([320] * 75)[:77], second], decode, END)
    assert map_subjects(columns, "frog").columns == [77 + 2]
    # a textual-inversion embedding: two vectors, one "word"
    vec = torch.zeros(768)
    emb = [(START, 1.0), (vec, 1.0), (vec, 1.0), (2368, 1.0), (END, 1.0)] + [(END, 1.0)] * 72
    columns = chunk_columns([emb], decode, END)
    assert [c.kind for c in columns[1:3]] == ["embedding", "embedding"]
    assert [c.word_end for c in columns[1:3]] == [False, True]
    assert map_subjects(columns, "cat").columns == [3]
    # SDXL's CLIP-G pads with id 0 ("!"): everything after the end token is padding, whatever its id
    assert chunk_columns([chunk([267, 2368], pad=0)], decode, END)[5].kind == "pad"


def test_token_rule_by_text_encoders() -> None:
    assert token_rule({"l": []}) is TokenRule.REFERENCE
    assert token_rule({"h": []}) is TokenRule.PROMPT_ONLY
    assert token_rule({"g": [], "l": []}) is TokenRule.PROMPT_ONLY


def test_placement_of_partial_runs() -> None:
    full = [14.6, 8.0, 4.0, 2.0, 1.0, 0.5, 0.2, 0.0]
    assert find_slice(full[3:], full) == 3
    assert find_slice([4.0, 2.5], full) is None
    placed = locate(full[2:6], [("other", [9.0, 1.0, 0.0]), ("normal", full)])
    assert (placed.total, placed.start, placed.source) == (7, 2, "normal")
    assert whole_run([14.6, 3.0, 0.0], 14.6).start == 0
    assert whole_run([3.0, 1.0, 0.0], 14.6) is None


class _Sampler:
    def __init__(self, function: object) -> None:
        self.sampler_function = function


def test_sampler_names_rules_and_refusals() -> None:
    def sample_heun() -> None: ...

    def dpm_fast_function() -> None: ...

    assert samplers.sampler_name(_Sampler(sample_heun)) == "heun"
    assert samplers.sampler_name(_Sampler(dpm_fast_function)) == "dpm_fast"
    assert samplers.rule("heun") is CallRule.PAIRED and samplers.refusal("heun") is None
    assert "discarded" in samplers.refusal("uni_pc")
    assert "does not know" in samplers.refusal("my_custom_sampler")
    # seeds_3: x, x_2, x_3 per step, one call on the last step
    assert [step_of_call(CallRule.THREE_STAGE, c) for c in range(7)] == [0, None, None, 1, None, None, 2]


class _Executor:
    """Stands for ComfyUI's WrapperExecutor of SAMPLER_SAMPLE: class_obj is the KSAMPLER, calling it samples."""

    def __init__(self, function: object) -> None:
        self.class_obj = _Sampler(function)
        self.calls = 0

    def __call__(self, *args: object, **kwargs: object) -> str:
        self.calls += 1
        return "the image"


class _Guider:
    def __init__(self, unet: torch.nn.Module, positive: list[dict]) -> None:
        self.inner_model = type("Model", (), {"diffusion_model": unet})()
        self.conds = {"positive": positive}


def _patch() -> object:
    from ae_comfy.patch import AEPatch
    from ae_lib.engine import ImageTarget

    return AEPatch(to_params({"subjects": "cat"}), ImageTarget((2,), (1, 2, 3), ("cat",)), torch.zeros(1, 77, 8), None)


@pytest.mark.parametrize("case", ["no cross-attention", "refused sampler", "denoise mask", "attn2 replaced",
                                  "forward wrapped", "foreign conditioning"])
def test_run_time_refusals_stand_down_and_the_image_is_made(case: str, unet: torch.nn.Module) -> None:
    """A&E stands down with a warning (the run's report, the node text, the console); the sampler still runs."""

    def sample_euler() -> None: ...

    def sample_unipc() -> None: ...

    patch = _patch()
    ours = [{"cross_attn": patch.cond, "model_conds": {}}]
    network = torch.nn.Linear(4, 4) if case == "no cross-attention" else unet
    positive = [{"cross_attn": torch.ones(1, 77, 8)}] if case == "foreign conditioning" else ours
    options = {
        "attn2 replaced": {"transformer_options": {"patches_replace": {"attn2": {("input", 4): object()}}}},
        "forward wrapped": {"model_function_wrapper": object()},
    }.get(case, {})
    executor = _Executor(sample_unipc if case == "refused sampler" else sample_euler)
    mask = torch.ones(1, 1, 8, 8) if case == "denoise mask" else None
    sigmas = torch.tensor([14.6, 1.0, 0.0])
    out = patch.sampler_sample(executor, _Guider(network, positive), sigmas, {"model_options": options}, None,
                               torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8), mask, False)
    assert out == "the image" and executor.calls == 1
    expected = {"no cross-attention": "no UNet cross-attention", "refused sampler": "'uni_pc' is not supported",
                "denoise mask": "denoise mask", "attn2 replaced": "replaces the UNet's cross-attention",
                "forward wrapped": "wraps the UNet's forward", "foreign conditioning": "not this node's"}[case]
    assert any(expected in w for w in patch.report.warnings), patch.report.warnings
    assert patch.report.altered == []


def test_install_py_is_harmless_when_comfyui_manager_runs_it(tmp_path: Path) -> None:
    """ComfyUI-Manager runs a pack's install.py with the pack as working directory and ComfyUI's python."""
    done = subprocess.run([sys.executable, "install.py"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # nothing installed, nothing to say on a current torch
    assert pyproject()["tool"]["comfy"]["DisplayName"] == "Attend and Excite"
    assert pyproject()["project"]["urls"]["Repository"].startswith("https://")
    assert not (ROOT / "requirements.txt").exists()


def pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


class _FailingRun:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def call(self, *args: object) -> None:
        raise self.error


def test_no_gradient_is_said_on_the_node_and_the_image_is_made() -> None:
    from ae_lib.engine import NoGradientError

    patch = _patch()
    executor = _Executor(None)
    patch._run = _FailingRun(NoGradientError("the A&E pass recorded no gradient"))
    assert patch.predict_noise(executor, torch.zeros(1, 4, 8, 8), torch.ones(1), {}, None) == "the image"
    assert patch._run is None and any("did not act" in w and "no gradient" in w for w in patch.report.warnings)
    patch._run = _FailingRun(RuntimeError("something else"))
    assert patch.predict_noise(executor, torch.zeros(1, 4, 8, 8), torch.ones(1), {}, None) == "the image"
    assert patch._run is None and any("stood down" in w for w in patch.report.warnings)


def test_the_node_text_gives_the_objective_and_its_own_measure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The paper's text stays as it was; another objective says its name and measure and has no thresholds line
    unless it reports thresholds; an objective registered later needs no change here."""
    from ae_comfy.patch import RunReport
    from ae_lib import objectives
    from ae_lib.objective_report import absolute_maps
    from ae_lib.schedule import Schedule
    from ae_lib.window import ImageWindow

    params = to_params({"subjects": "cat, frog"})
    schedule = Schedule.from_params(params, 10)
    excite = RunReport("excite", schedule=schedule, images={0: ImageWindow(("cat", "frog"), [0.914, 0.84])})
    assert excite.text() == ("image 1: cat 0.91, frog 0.84; thresholds: 0.05 at step 0 not run; 0.5 at step 2 not "
                             "run; 0.8 at step 4 not run")
    words = ("red", "car", "blue", "bird")
    contrast = RunReport("contrast", schedule=schedule, images={0: ImageWindow(words, [0.42, 0.4, -0.1, 0.38])})
    assert contrast.text() == "image 1: contrast, separation: red 0.420, car 0.400, blue -0.100, bird 0.380"

    class Later(objectives.Objective):
        name, measure, reports_thresholds = "later", "weakest spread", True

    monkeypatch.setitem(objectives.OBJECTIVES, "later", Later)
    later = RunReport("later", schedule=schedule, images={1: ImageWindow(("cat",), [0.5, 0.25])})
    assert later.text().startswith("image 2: later, weakest spread: #1 0.50, #2 0.25; thresholds: 0.05 at step 0")
    assert absolute_maps("excite") and not absolute_maps("contrast") and not absolute_maps("later")
