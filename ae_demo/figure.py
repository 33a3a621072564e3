"""The demo's PNG: each subject's attention map at the end of the window, without and with A&E."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ae_lib.heatmap import apply_colormap

CELL = 160


def _cell(m: torch.Tensor, top: float) -> Image.Image:
    up = F.interpolate(m[None, None].float(), size=(CELL, CELL), mode="bilinear", align_corners=False)[0, 0]
    return Image.fromarray((apply_colormap(up / max(top, 1e-8)) * 255).round().to(torch.uint8).numpy())


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
