"""Stand-in for the parts of modules/images.py (v1.10.1) that processing uses; nothing is saved to disk."""

from __future__ import annotations

import math

from modules import script_callbacks
from modules.shared import opts
from PIL import Image


def image_grid(imgs: list, batch_size: int = 1, rows: int | None = None) -> Image.Image:
    """modules/images.py:image_grid -- rows from opts.n_rows (-1: round(sqrt(n)))."""
    if rows is None:
        if opts.n_rows > 0:
            rows = opts.n_rows
        elif opts.n_rows == 0:
            rows = batch_size
        elif opts.grid_prevent_empty_spots:
            rows = math.floor(math.sqrt(len(imgs)))
            while len(imgs) % rows != 0:
                rows -= 1
        else:
            rows = round(math.sqrt(len(imgs)))
    rows = min(rows, len(imgs))
    cols = math.ceil(len(imgs) / rows)
    params = script_callbacks.ImageGridLoopParams(imgs, cols, rows)
    script_callbacks.image_grid_callback(params)
    w, h = map(max, zip(*(img.size for img in imgs), strict=False))
    grid = Image.new("RGB", size=(params.cols * w, params.rows * h), color="black")
    for i, img in enumerate(params.imgs):
        grid.paste(img, box=(i % params.cols * w, i // params.cols * h))
    return grid


def flatten(img: Image.Image, bgcolor: str) -> Image.Image:
    """modules/images.py:flatten -- composite RGBA over bgcolor, return RGB."""
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, bgcolor)
        background.paste(img, mask=img)
        img = background
    return img.convert("RGB")


def resize_image(resize_mode: int, im: Image.Image, width: int, height: int, upscaler_name=None) -> Image.Image:
    """modules/images.py:resize_image -- only mode 0 ('Just resize', LANCZOS) is covered."""
    if resize_mode != 0:
        raise NotImplementedError("only resize_mode 0 is covered by the stand-in")
    return im.resize((width, height), resample=Image.LANCZOS)


def save_image(*args, **kwargs) -> None:
    """modules/images.py:save_image -- the stand-in never writes files."""
