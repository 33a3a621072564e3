"""The demo's PNG: each subject's attention map at the end of the window, without and with A&E."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

CELL = 160


def _colour(values: torch.Tensor) -> torch.Tensor:
    """A small perceptual ramp (dark blue -> teal -> yellow) for values in 0-1; (h, w) -> (h, w, 3) uint8."""
    stops = torch.tensor([[0.07, 0.04, 0.25], [0.13, 0.45, 0.56], [0.37, 0.79, 0.38], [0.99, 0.91, 0.14]])
    v = values.clamp(0, 1) * (len(stops) - 1)
    lo = v.floor().long().clamp(max=len(stops) - 2)
    frac = (v - lo).unsqueeze(-1)
    return ((stops[lo] * (1 - frac) + stops[lo + 1] * frac) * 255).round().to(torch.uint8)


def _cell(m: torch.Tensor, top: float) -> Image.Image:
    up = F.interpolate(m[None, None].float(), size=(CELL, CELL), mode="bilinear", align_corners=False)[0, 0]
    return Image.fromarray(_colour(up / max(top, 1e-8)).numpy())


def render(path: Path, labels: list[str], rows: list[tuple[str, torch.Tensor, list[float]]]) -> Path:
    """rows: (title, (S, h, w) maps, final scores); one column per subject, shared colour scale."""
    top = max(float(maps.max()) for _, maps, _ in rows)
    pad, head = 8, 22
    image = Image.new("RGB", (pad + len(labels) * (CELL + pad), head + len(rows) * (CELL + head + pad)), "white")
    draw = ImageDraw.Draw(image)
    for r, (title, maps, scores) in enumerate(rows):
        y = head + r * (CELL + head + pad)
        for s, label in enumerate(labels):
            x = pad + s * (CELL + pad)
            draw.text((x, y - 16), f"{title}: {label} {scores[s]:.2f}", fill="black")
            image.paste(_cell(maps[s], top), (x, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
