"""The ComfyUI nodes: "Attend and Excite" (MODEL + CLIP + prompt -> patched MODEL + CONDITIONING) and
"Attend and Excite maps" (the patched MODEL + the decoded images -> attention-map grids).

Why the node encodes the prompt itself: A&E scores columns of the text embedding (column 77c + j is chunk c,
position j of the tokens). The node tokenizes the prompt once, maps the subjects on those tokens, encodes
exactly those tokens into the CONDITIONING it outputs, and at sampling time runs only when the sampler's
positive conditioning is that very tensor: the scored columns are provably the conditioning's columns.
"""

from __future__ import annotations

from typing import Any

import torch

from ae_comfy.inputs import param_inputs, to_params, validate
from ae_comfy.patch import KEY, AEPatch
from ae_comfy.tokens import prompt_columns, token_rule
from ae_lib.targets import build_target

CATEGORY = "conditioning/attend and excite"


class AttendAndExcite:
    """Attend-and-Excite on a clone of the MODEL for the prompt this node encodes."""

    DESCRIPTION = (
        "Attend-and-Excite (Chefer et al. 2023): during the first part of sampling, nudges the latent so that "
        "every named subject of the prompt gets a strong cross-attention peak. Connect MODEL to the sampler's "
        "model and CONDITIONING to its positive input. Works with SD1.x, SD2.x and SDXL. The objective input "
        "picks what the nudges minimise (excite: the paper; the others bind the words of each group, e.g. "
        "'red car; blue bird')."
    )
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("MODEL", "CONDITIONING")
    RETURN_NAMES = ("model", "positive")
    OUTPUT_TOOLTIPS = (
        "A clone of the model that applies A&E when a sampler runs it with this node's conditioning.",
        "The prompt encoded by this CLIP: connect it to the sampler's positive input.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The diffusion model (SD1.x, SD2.x or SDXL)."}),
                "clip": ("CLIP", {"tooltip": "The CLIP that encodes the prompt."}),
                "text": ("STRING", {"multiline": True, "dynamicPrompts": True,
                                    "tooltip": "The prompt, e.g. 'a cat and a frog'."}),
                **param_inputs(),
            },
            "optional": param_inputs(optional=True),  # absent from older workflows: their defaults apply
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, thresholds: Any = None) -> bool | str:
        """Checked when the prompt is queued; the numeric ranges are checked by ComfyUI from INPUT_TYPES."""
        return validate({"thresholds": thresholds}) if thresholds is not None else True

    def apply(self, model: Any, clip: Any, text: str, unique_id: Any = None, **values: Any) -> tuple[Any, Any]:
        if clip is None:
            raise RuntimeError("Attend and Excite: the clip input is empty (the checkpoint has no text encoder)")
        params = to_params(values)
        tokens = clip.tokenize(text)
        columns = prompt_columns(clip, tokens)
        found = build_target(columns, params.subjects, params.groups, token_rule(tokens), params.objective)
        if not found.ok:
            raise ValueError(f"Attend and Excite: {found.message()} (prompt: {text!r})")
        target = found.target
        conditioning = clip.encode_from_tokens_scheduled(tokens)
        patched = model.clone()
        patch = AEPatch(params, target, conditioning[0][0], None if unique_id is None else str(unique_id))
        patch.install(patched)
        return patched, conditioning


class AttendAndExciteMaps:
    """The objective's attention maps (first altered step, end of the window) over the decoded images."""

    DESCRIPTION = ("The attention maps of the last run of an Attend and Excite MODEL, over the decoded images: "
                   "one grid per image, a row per time point, a column per subject (or group word), with the "
                   "objective's measure.")
    CATEGORY = CATEGORY
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("maps",)
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "The MODEL output of an Attend and Excite node."}),
                "images": ("IMAGE", {"tooltip": "The decoded images of that sampler run (VAE Decode)."}),
            }
        }

    def render(self, model: Any, images: torch.Tensor) -> dict[str, Any]:
        from PIL import Image

        from ae_lib.heatmap import render_heatmap_grid
        from ae_lib.objective_report import absolute_maps

        patch = find_patch(model)
        if patch is None:
            raise ValueError("Attend and Excite maps: this MODEL does not come from an Attend and Excite node")
        report = patch.report
        stretch = not absolute_maps(report.objective)
        grids = []
        for b in range(images.shape[0]):
            image = report.images.get(b)
            if image is None or image.first_maps is None or image.last_maps is None:
                continue
            pixels = (images[b].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
            grid = render_heatmap_grid(Image.fromarray(pixels), image.labels, image.first_maps, image.last_maps,
                                       scores_first=image.first_scores, scores_end=image.scores,
                                       per_map_scale=stretch)
            grids.append(torch.from_numpy(_array(grid)).float() / 255.0)
        text = report.text()
        if not grids:
            raise ValueError(f"Attend and Excite maps: the last run kept no maps ({text})")
        size = grids[0].shape
        batch = torch.stack([g for g in grids if g.shape == size])
        return {"ui": {"text": [text]}, "result": (batch,)}


def _array(image: Any) -> Any:
    import numpy as np

    return np.asarray(image.convert("RGB")).copy()


def find_patch(model: Any) -> AEPatch | None:
    """The AEPatch a MODEL carries (its PREDICT_NOISE wrapper), or None."""
    from comfy.patcher_extension import WrappersMP

    for wrapper in getattr(model, "wrappers", {}).get(WrappersMP.PREDICT_NOISE, {}).get(KEY, []):
        owner = getattr(wrapper, "__self__", None)
        if isinstance(owner, AEPatch):
            return owner
    return None


NODE_CLASS_MAPPINGS = {"AttendAndExcite": AttendAndExcite, "AttendAndExciteMaps": AttendAndExciteMaps}
NODE_DISPLAY_NAME_MAPPINGS = {"AttendAndExcite": "Attend and Excite", "AttendAndExciteMaps": "Attend and Excite maps"}
