"""A PNG contact sheet of generated samples.

One row per source image: ``source`` | ``label`` (the source with a coloured semi-transparent class overlay and
the known-region outline) | ``sample 1`` .. ``sample k`` (each with the known-region outline drawn thinly, so
one sees what was kept and what was generated). Tiles are upscaled with nearest neighbour to at least 128 px
so 64x64 images stay readable; 2-px gutters; header text in PIL's default font.

The known region defaults to the union of the per-class bounding boxes of the label (DESIGN.md §2 ``box``
mode, no margin); pass ``boxes`` (per row: a list of ``(y0, x0, y1, x1)`` half-open pixel boxes in source
coordinates) or ``known`` (per row: a ``[H, W]`` mask, 1 = known) to show the region actually used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_write
from ..errors import AugPaintError
from ..core.masks import known_mask

# tab10-like class colours (class 1 first)
PALETTE = np.array(
    [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
        (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    ],
    dtype=np.float32,
)
OUTLINE = (255, 220, 0)
GUTTER = 2
MIN_TILE = 128
BACKGROUND = (24, 24, 24)


def _rgb_uint8(image: np.ndarray) -> np.ndarray:
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 2:
        x = x[None]
    if x.shape[0] == 1:
        x = np.repeat(x, 3, axis=0)
    x = x[:3]
    u = np.clip(np.rint((x.astype(np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.moveaxis(u, 0, -1))


def _outline(mask: np.ndarray) -> np.ndarray:
    """Inner boundary (1 px) of a boolean mask."""
    m = np.pad(mask, 1, constant_values=False)
    interior = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~interior


def _up(arr: np.ndarray, s: int) -> np.ndarray:
    return np.repeat(np.repeat(arr, s, axis=0), s, axis=1) if s > 1 else arr


def _resize_rgb(rgb: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if rgb.shape[:2] == hw:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((hw[1], hw[0]), Image.BILINEAR))


def _known_region(label: np.ndarray, hw: tuple[int, int], boxes=None, known=None) -> np.ndarray:
    """bool [H, W] region a row outlines: its ``boxes`` (y0, x0, y1, x1), else its ``known`` mask, else the
    label's boxes."""
    if boxes is not None:
        kmask = np.zeros(hw, bool)
        for (y0, x0, y1, x1) in boxes:
            kmask[max(0, y0): y1, max(0, x0): x1] = True
        return kmask
    if known is not None:
        return np.asarray(known).astype(bool)
    return known_mask(label, "box") > 0


def make_preview(rows, path, max_samples: int = 6, boxes=None, known=None) -> Path:
    """Write the contact sheet for ``rows`` = ``[(source [3,H,W], label [H,W], [sample [3,h,w], ...]), ...]``
    to ``path`` (PNG); samples of another size are resized to the source size. Returns the path."""
    rows = list(rows)
    if not rows:
        raise ValueError("make_preview needs at least one row")
    ncols = 2 + min(max_samples, max(len(r[2]) for r in rows))
    h = max(np.asarray(r[0]).shape[-2] for r in rows)
    w = max(np.asarray(r[0]).shape[-1] for r in rows)
    scale = max(1, -(-MIN_TILE // min(h, w)))
    th, tw = h * scale, w * scale
    font = ImageFont.load_default()
    header = 16
    W = ncols * tw + (ncols + 1) * GUTTER
    H = header + len(rows) * (th + GUTTER) + GUTTER
    sheet = Image.new("RGB", (W, H), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    titles = ["source", "label"] + [f"sample {i + 1}" for i in range(ncols - 2)]
    for c, t in enumerate(titles):
        draw.text((GUTTER + c * (tw + GUTTER) + 3, 2), t, fill=(230, 230, 230), font=font)

    for r, (src, lab, samples) in enumerate(rows):
        src_rgb = _rgb_uint8(src)
        sh, sw = src_rgb.shape[:2]
        lab = np.asarray(lab)
        kmask = _known_region(lab, (sh, sw), boxes[r] if boxes is not None else None,
                              known[r] if known is not None else None)
        s = max(1, -(-MIN_TILE // min(sh, sw)))
        # outline computed at tile resolution, so it is 1 px wide whatever the upscale
        edge = _outline(_up(kmask, s)) if kmask.any() else None

        def tile(rgb, overlay_label=False, outline=True):
            t = _up(rgb, s).astype(np.float32)
            if overlay_label:
                ul = _up(lab, s)
                fg = ul > 0
                if fg.any():
                    col = PALETTE[(ul[fg] - 1) % len(PALETTE)]
                    t[fg] = 0.55 * t[fg] + 0.45 * col
            if outline and edge is not None:
                t[edge] = OUTLINE
            return Image.fromarray(np.clip(t, 0, 255).astype(np.uint8))

        tiles = [tile(src_rgb, outline=False), tile(src_rgb, overlay_label=True)]
        for smp in list(samples)[: ncols - 2]:
            tiles.append(tile(_resize_rgb(_rgb_uint8(smp), (sh, sw))))
        y = header + r * (th + GUTTER)
        for c, t in enumerate(tiles):
            sheet.paste(t, (GUTTER + c * (tw + GUTTER), y))
    path = Path(path)
    try:
        atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))  # a killed run never leaves half a preview
    except OSError as e:
        raise AugPaintError(f"cannot write preview {path} ({e.strerror or e})") from None
    return path


__all__ = ["make_preview"]
