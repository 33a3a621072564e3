"""'Save attention maps': per image, a grid of each subject's map (first altered step, end of the window) over
the final image; saved next to the outputs as the WebUI's save settings say, and added to the gallery after
the images. Through the API only when the request itself set save_maps. Every objective's maps (its `maps`, one
per label) and its measure label the cells; the paper's maps are on its absolute 0-1 scale, another objective's
(plain attention probabilities, far below 1) each on its own scale."""

from __future__ import annotations

from typing import Any

from modules import images, shared

from ae_lib.heatmap import render_heatmap_grid
from ae_lib.objectives import DEFAULT
from ae_webui.state import LOG, get_state


def keep(p: Any, image: Any) -> None:
    """postprocess_image: render this image's grid while its maps are at hand (they are per batch)."""
    state = get_state(p)
    if state is None or not state.params.save_maps:
        return
    report = state.images.get(int(getattr(p, "batch_index", 0)))
    if report is None or report.first_maps is None or report.last_maps is None:
        return
    try:
        grid = render_heatmap_grid(image, report.labels, report.first_maps, report.last_maps,
                                   scores_first=report.first_scores, scores_end=report.scores,
                                   per_map_scale=state.params.objective != DEFAULT)
    except Exception:  # a picture must never cost the user the image
        LOG.exception("could not render the attention maps")
        return
    state.map_grids.append(grid)
    if shared.opts.samples_save and not getattr(p, "do_not_save_samples", False):
        i = int(getattr(p, "batch_index", 0))
        images.save_image(grid, p.outpath_samples, "", p.seeds[i], p.prompts[i], shared.opts.samples_format, p=p,
                          suffix="-attention")


def add_to_gallery(p: Any, processed: Any) -> None:
    """postprocess: the grids go after the images (with the run's info text)."""
    state = get_state(p)
    if state is None or not state.map_grids:
        return
    for grid in state.map_grids:
        processed.images.append(grid)
        processed.infotexts.append(processed.info)
    state.map_grids = []
