from __future__ import annotations

import pytest
import torch
from PIL import Image

from ae_lib import heatmap
from ae_lib.heatmap import apply_colormap, blend, colormap_lut, render_heatmap_grid

VIRIDIS_0 = (68, 1, 84)  # matplotlib's viridis at 0 and 1
VIRIDIS_1 = (253, 231, 37)


def _luminance(rgb: torch.Tensor) -> torch.Tensor:
    return rgb @ torch.tensor([0.2126, 0.7152, 0.0722])


def _grey(size: tuple[int, int] = (64, 48), level: int = 128) -> Image.Image:
    return Image.new("RGB", size, (level, level, level))


def _maps(s: int = 2, h: int = 6, w: int = 8, value: float = 0.0) -> torch.Tensor:
    return torch.full((s, h, w), value)


def _pixels(img: Image.Image) -> torch.Tensor:
    return torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(img.height, img.width, 3).long()


def test_lut_endpoints_are_viridis():
    lut = colormap_lut()
    assert lut.shape == (256, 3)
    assert (lut[0] * 255).round().tolist() == list(VIRIDIS_0)
    assert (lut[-1] * 255).round().tolist() == list(VIRIDIS_1)
    # mid-point: matplotlib's viridis(0.5) is (33, 145, 140)
    assert (lut[128] * 255).tolist() == pytest.approx([33, 145, 140], abs=2)


def test_lut_luminance_rises_monotonically():
    lum = _luminance(colormap_lut())
    assert bool((lum[1:] > lum[:-1]).all())


def test_apply_colormap_clamps_and_keeps_shape():
    values = torch.tensor([[-1.0, 0.0], [1.0, 2.0]])
    rgb = apply_colormap(values)
    lut = colormap_lut()
    assert rgb.shape == (2, 2, 3)
    assert torch.equal(rgb[0, 0], lut[0])
    assert torch.equal(rgb[0, 1], lut[0])
    assert torch.equal(rgb[1, 0], lut[-1])
    assert torch.equal(rgb[1, 1], lut[-1])


def test_blend_math():
    image = torch.tensor([0.2, 0.4, 1.0])
    overlay = torch.tensor([1.0, 0.0, 0.5])
    assert blend(image, overlay, 0.25).tolist() == pytest.approx([0.4, 0.3, 0.875])
    assert torch.equal(blend(image, overlay, 0.0), image)
    assert torch.equal(blend(image, overlay, 1.0), overlay)


def _band() -> int:
    return heatmap._label_band_height(heatmap._font())


def test_grid_shape_rows_times_columns_subjects():
    grid = render_heatmap_grid(_grey((64, 48)), ["cat", "frog", "dog"], _maps(3), _maps(3))
    gap, band = heatmap.GAP, _band()
    assert grid.size == (3 * 64 + 4 * gap, 2 * (48 + band) + 3 * gap)


def test_large_images_are_shrunk_to_max_cell_keeping_aspect():
    grid = render_heatmap_grid(_grey((1024, 512)), ["cat"], _maps(1), _maps(1), max_cell=128)
    assert grid.width == 128 + 2 * heatmap.GAP
    assert grid.height == 2 * (64 + _band()) + 3 * heatmap.GAP


def test_cell_pixels_are_the_blend_of_image_and_colour():
    # A constant map of 1.0 over mid-grey: every map pixel is 0.5*grey + 0.5*yellow.
    grid = render_heatmap_grid(_grey(level=100), ["cat"], _maps(1, value=1.0), _maps(1, value=0.0), alpha=0.5)
    px = _pixels(grid)
    gap, band = heatmap.GAP, _band()
    top = px[gap + band + 5, gap + 5].tolist()
    expected = [round((100 / 255 * 0.5 + c / 255 * 0.5) * 255) for c in VIRIDIS_1]
    assert top == pytest.approx(expected, abs=1)
    bottom = px[2 * gap + 2 * band + 48 + 5, gap + 5].tolist()  # second row: map 0 -> dark purple
    expected0 = [round((100 / 255 * 0.5 + c / 255 * 0.5) * 255) for c in VIRIDIS_0]
    assert bottom == pytest.approx(expected0, abs=1)


def test_maps_are_upsampled_bilinearly_to_the_cell():
    # Left half hot, right half cold on a 2x2 map: the cell goes smoothly from yellow-ish to purple.
    maps = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    grid = render_heatmap_grid(_grey((64, 64)), ["cat"], maps, maps, alpha=1.0)
    row = _pixels(grid)[heatmap.GAP + _band() + 32, heatmap.GAP : heatmap.GAP + 64]
    lum = _luminance(row.float())
    assert lum[0] > lum[32] > lum[63]
    assert len(set(map(tuple, row.tolist()))) > 8  # many intermediate colours, not two blocks


def test_label_band_has_text_pixels_and_no_overlay():
    grid = render_heatmap_grid(_grey(level=100), ["cat"], _maps(1, value=1.0), _maps(1, value=1.0))
    px = _pixels(grid)
    gap, band = heatmap.GAP, _band()
    strip = px[gap : gap + band, gap : gap + 64]
    # Text is light grey on dark grey (anti-aliased between the two): every pixel is neutral...
    assert int((strip.max(-1).values - strip.min(-1).values).max()) <= 2
    # ...and some are glyph pixels, brighter than the background.
    assert int((strip[..., 0] > 150).sum()) > 10
    assert int((strip[..., 0] == heatmap.BACKGROUND[0]).sum()) > strip.shape[0] * strip.shape[1] // 2


def test_labels_differ_per_cell():
    one = render_heatmap_grid(_grey(), ["cat", "frog"], _maps(2), _maps(2))
    two = render_heatmap_grid(_grey(), ["cat", "toad"], _maps(2), _maps(2))
    px1, px2 = _pixels(one), _pixels(two)
    band = _band()
    assert torch.equal(px1[:band, :66], px2[:band, :66])  # same "cat" label
    assert not torch.equal(px1[:band, 66:], px2[:band, 66:])  # "frog" vs "toad"


def test_deterministic_and_inputs_unchanged():
    first, end = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(0)), torch.rand(2, 4, 4)
    before = first.clone()
    a = render_heatmap_grid(_grey(), ["cat", "frog"], first, end)
    b = render_heatmap_grid(_grey(), ["cat", "frog"], first, end)
    assert a.tobytes() == b.tobytes()
    assert torch.equal(first, before)


def test_scores_in_labels_default_to_map_max():
    maps = _maps(1, value=0.25)
    default = render_heatmap_grid(_grey(), ["cat"], maps, maps)
    explicit = render_heatmap_grid(_grey(), ["cat"], maps, maps, scores_first=[0.25], scores_end=[0.25])
    other = render_heatmap_grid(_grey(), ["cat"], maps, maps, scores_first=[0.75], scores_end=[0.25])
    assert default.tobytes() == explicit.tobytes()
    assert default.tobytes() != other.tobytes()


def test_per_map_scale_stretches_faint_maps():
    faint = torch.tensor([[[0.1, 0.0], [0.0, 0.0]]])
    absolute = _pixels(render_heatmap_grid(_grey(), ["cat"], faint, faint, alpha=1.0))
    stretched = _pixels(render_heatmap_grid(_grey(), ["cat"], faint, faint, alpha=1.0, per_map_scale=True))
    y, x = heatmap.GAP + _band(), heatmap.GAP  # top-left map pixel: the hot corner
    assert _luminance(stretched[y, x].float()) > _luminance(absolute[y, x].float()) + 50


def test_half_precision_maps_are_accepted():
    maps = torch.rand(2, 4, 4).half()
    assert render_heatmap_grid(_grey(), ["cat", "frog"], maps, maps).mode == "RGB"


@pytest.mark.parametrize(
    ("labels", "first", "end", "match"),
    [
        (["cat"], _maps(2), _maps(2), "S = 1 labels"),
        (["cat", "frog"], _maps(2), _maps(2, h=3), "differ in shape"),
        ([], _maps(0), _maps(0), "S = 0"),
        (["cat"], torch.zeros(1, 4), torch.zeros(1, 4), r"\(S, h, w\)"),
    ],
)
def test_bad_shapes_are_rejected(labels, first, end, match):
    with pytest.raises(ValueError, match=match):
        render_heatmap_grid(_grey(), labels, first, end)


def test_long_labels_are_shortened_to_the_cell_keeping_the_score():
    font = heatmap._font()
    text = heatmap._cell_label(font, 60, "supercalifragilistic", 0.42, "first step")
    assert text.endswith(".. 0.42")
    assert font.getlength(text) <= 60
    assert heatmap._cell_label(font, 400, "cat", 0.42, "first step") == "cat 0.42 | first step"
    assert heatmap._cell_label(font, 60, "cat", 0.42, "end of window") == "cat 0.42"
    grid = render_heatmap_grid(_grey((40, 40)), ["supercalifragilistic"], _maps(1), _maps(1))
    assert grid.width == 40 + 2 * heatmap.GAP  # the label did not widen the grid


def test_bitmap_font_fallback_handles_non_latin_labels(monkeypatch):
    from PIL import ImageFont

    if not hasattr(ImageFont, "load_default_imagefont"):
        pytest.skip("Pillow < 10.1: load_default() is already the bitmap font")
    monkeypatch.setattr(heatmap, "_font", ImageFont.load_default_imagefont)
    grid = render_heatmap_grid(_grey(), ["猫"], _maps(1), _maps(1))
    assert grid.mode == "RGB"
