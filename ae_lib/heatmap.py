"""Attention heat maps: one small grid per image, a row per time point and a column per subject.

Each cell is the final image (scaled to the cell size) with the subject's attention map upsampled bilinearly
to that size, coloured with viridis and alpha-blended over it, under a label band "cat 0.42 | first step".
The maps are the (S, h, w) tensors of ae_lib.scores.subject_maps: probabilities after the x100 softmax, so
they are shown on the absolute 0-1 scale by default (a neglected subject looks dark, as its score says).
PIL + torch only; the output depends on nothing but the inputs (and the installed Pillow's default font).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

__all__ = ["apply_colormap", "blend", "colormap_lut", "render_heatmap_grid"]

# viridis (matplotlib's, CC0) sampled at i/16; the 256-entry LUT interpolates linearly between these.
_VIRIDIS_ANCHORS = (
    0x440154, 0x48186A, 0x472D7B, 0x424086, 0x3B528B, 0x33638D, 0x2C728E, 0x26828E, 0x21918C,
    0x1FA088, 0x28AE80, 0x3FBC73, 0x5EC962, 0x84D44B, 0xADDC30, 0xD8E219, 0xFDE725,
)  # fmt: skip
LUT_SIZE = 256
DEFAULT_TIME_LABELS = ("first step", "end of window")
BACKGROUND = (24, 24, 24)
LABEL_TEXT = (240, 240, 240)
GAP = 2  # pixels between cells
FONT_SIZE = 12


def colormap_lut(size: int = LUT_SIZE) -> torch.Tensor:
    """(size, 3) float32 RGB in 0-1: viridis, dark purple at 0 to yellow at 1."""
    anchors = (
        torch.tensor([[(c >> 16) & 255, (c >> 8) & 255, c & 255] for c in _VIRIDIS_ANCHORS], dtype=torch.float32)
        / 255.0
    )
    pos = torch.linspace(0, len(anchors) - 1, size)
    lo = pos.floor().long().clamp(max=len(anchors) - 2)
    frac = (pos - lo).unsqueeze(1)
    return anchors[lo] * (1 - frac) + anchors[lo + 1] * frac


def apply_colormap(values: torch.Tensor, lut: torch.Tensor | None = None) -> torch.Tensor:
    """(..., ) values in 0-1 (clamped) -> (..., 3) RGB in 0-1 by nearest LUT entry."""
    lut = colormap_lut() if lut is None else lut
    index = (values.float().clamp(0, 1) * (len(lut) - 1)).round().long()
    return lut[index]


def blend(image: torch.Tensor, overlay: torch.Tensor, alpha: float) -> torch.Tensor:
    """(1 - alpha) * image + alpha * overlay, elementwise; both in 0-1."""
    return image * (1.0 - alpha) + overlay * alpha


def _cell_size(image: Image.Image, max_cell: int) -> tuple[int, int]:
    """(width, height) of a cell: the image's aspect ratio, the long side at most max_cell."""
    scale = min(1.0, max_cell / max(image.size))
    return max(1, round(image.width * scale)), max(1, round(image.height * scale))


def _image_tensor(image: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """(h, w, 3) float in 0-1 of the image resized to size (PIL bicubic, deterministic)."""
    small = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    data = torch.frombuffer(bytearray(small.tobytes()), dtype=torch.uint8)
    return data.view(size[1], size[0], 3).float() / 255.0


def _upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(S, h, w) -> (S, H, W) bilinear, on the CPU in fp32."""
    x = maps.detach().to("cpu", torch.float32).unsqueeze(1)
    return F.interpolate(x, size=(size[1], size[0]), mode="bilinear", align_corners=False).squeeze(1)


def _to_pil(rgb: torch.Tensor) -> Image.Image:
    data = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
    return Image.fromarray(data.numpy(), mode="RGB")


def _fit(text: str, font: ImageFont.ImageFont, width: int) -> str:
    """The text, shortened with '..' until it fits the width (ASCII: the bitmap fallback font is Latin-1)."""
    if not isinstance(font, ImageFont.FreeTypeFont):
        text = text.encode("latin-1", "replace").decode("latin-1")
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "..") > width:
        text = text[:-1]
    return text + ".."


def _cell_label(font: ImageFont.ImageFont, width: int, label: str, score: float, time_label: str) -> str:
    """ "cat 0.42 | first step": the score stays visible; the time point goes first, then the label shrinks."""
    score_text = f" {score:.2f}"
    head = _fit(str(label), font, max(0, int(width - font.getlength(score_text)))) + score_text
    full = f"{head} | {time_label}"
    return full if font.getlength(full) <= width else head


def _check(labels: Sequence[str], rows: Sequence[torch.Tensor]) -> None:
    shapes = {tuple(m.shape) for m in rows}
    if len(shapes) != 1:
        msg = f"the time points' maps differ in shape: {sorted(shapes)}"
        raise ValueError(msg)
    shape = shapes.pop()
    if len(shape) != 3 or shape[0] != len(labels) or shape[0] == 0:
        msg = f"expected maps of shape (S, h, w) with S = {len(labels)} labels, got {shape}"
        raise ValueError(msg)


def _scores_or_max(maps: torch.Tensor, scores: Sequence[float] | None) -> list[float]:
    if scores is None:
        return [float(v) for v in maps.detach().float().flatten(1).max(dim=1).values]
    if len(scores) != len(maps):
        msg = f"{len(maps)} maps but {len(scores)} scores"
        raise ValueError(msg)
    return [float(v) for v in scores]


def render_heatmap_grid(
    image: Image.Image,
    labels: Sequence[str],
    first: torch.Tensor,
    end: torch.Tensor,
    *,
    scores_first: Sequence[float] | None = None,
    scores_end: Sequence[float] | None = None,
    time_labels: Sequence[str] = DEFAULT_TIME_LABELS,
    alpha: float = 0.5,
    max_cell: int = 256,
    per_map_scale: bool = False,
) -> Image.Image:
    """The grid for one image: rows = (first, end), columns = subjects.

    `scores_*` label the cells (default: each map's max); `per_map_scale` stretches each map to its own
    0-max range instead of the absolute 0-1 scale.
    """
    rows = [first, end]
    _check(labels, rows)
    row_scores = [_scores_or_max(first, scores_first), _scores_or_max(end, scores_end)]
    size = _cell_size(image, max_cell)
    base = _image_tensor(image, size)
    lut = colormap_lut()
    font = _font()
    band = _label_band_height(font)
    cols = len(labels)
    grid = Image.new(
        "RGB", (cols * size[0] + (cols + 1) * GAP, len(rows) * (size[1] + band) + (len(rows) + 1) * GAP), BACKGROUND
    )
    draw = ImageDraw.Draw(grid)
    for r, maps in enumerate(rows):
        up = _upsample(maps, size)
        if per_map_scale:
            up = up / up.flatten(1).max(dim=1).values.clamp(min=1e-8).view(-1, 1, 1)
        for s in range(cols):
            x0, y0 = GAP + s * (size[0] + GAP), GAP + r * (size[1] + band + GAP)
            grid.paste(_to_pil(blend(base, apply_colormap(up[s], lut), alpha)), (x0, y0 + band))
            text = _cell_label(font, size[0] - 4, labels[s], row_scores[r][s], time_labels[r])
            draw.text((x0 + 2, y0 + 1), text, fill=LABEL_TEXT, font=font)
    return grid


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)  # Pillow >= 10.1 with FreeType
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()  # the WebUI's Pillow 9.5: the Latin-1 bitmap font


def _label_band_height(font: ImageFont.ImageFont) -> int:
    top, bottom = font.getbbox("Ag|0")[1::2]
    return int(bottom - min(top, 0)) + 4
