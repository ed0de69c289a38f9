"""``KEPT/filter_preview.png``: what the filter keeps and what it removes, as pictures.

Two rows of tiles: the highest-scored kept pairs and the lowest-scored removed pairs (when any are removed),
each tile the generated image with its label's outline and its score underneath, so one sees at a glance what
the segmenter trusts (organs where the label says they are) and what it rejects (organs painted over,
artefacts, label mismatch).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_write
from ..data.imageio import read_image, read_label

TILE = 96
PER_ROW = 8
OUTLINE = (255, 220, 0)


def _tile(image_path: Path, label_path: Path) -> Image.Image:
    img = read_image(image_path)
    rgb = np.clip(np.rint((img.transpose(1, 2, 0) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    lab = read_label(label_path, 255)
    edge = np.zeros(lab.shape, bool)
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    rgb[edge] = OUTLINE
    return Image.fromarray(rgb).resize((TILE, TILE), Image.NEAREST)


def write_filter_preview(samples: Path, ranked: list[dict], records: dict[str, dict], path: Path) -> Path | None:
    """Write the sheet for ``ranked`` (rank order, each with name, score, kept); None when nothing was scored."""
    kept = [r for r in ranked if r["kept"]][:PER_ROW]
    removed = [r for r in ranked if not r["kept"]][-PER_ROW:]
    rows = [("kept: highest scores", kept)] + ([("removed: lowest scores", removed)] if removed else [])
    if not kept:
        return None
    font = ImageFont.load_default()
    header, caption, gap = 14, 12, 4
    width = PER_ROW * (TILE + gap) + gap
    height = len(rows) * (header + TILE + caption + gap) + gap
    sheet = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    y = gap
    for title, row in rows:
        draw.text((gap, y), title, fill=(230, 230, 230), font=font)
        y += header
        for i, r in enumerate(row):
            rec = records[r["name"]]
            x = gap + i * (TILE + gap)
            sheet.paste(_tile(samples / rec["image"], samples / rec["label"]), (x, y))
            draw.text((x + 2, y + TILE), f"{r['score']:.3f}", fill=(200, 200, 200), font=font)
        y += TILE + caption + gap
    atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))
    return path
