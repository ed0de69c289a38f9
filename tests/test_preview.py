"""Preview contact sheet."""
import numpy as np
from PIL import Image

from augpaint_fast.preview import make_preview


def test_preview_size(tmp_path):
    rng = np.random.default_rng(0)
    src = np.repeat(rng.uniform(-1, 1, (1, 64, 64)).astype(np.float32), 3, axis=0)
    lab = np.zeros((64, 64), np.int64)
    lab[10:20, 10:30] = 1
    lab[40:50, 30:40] = 2
    samples = [rng.uniform(-1, 1, (3, 64, 64)).astype(np.float32) for _ in range(8)]
    p = make_preview([(src, lab, samples), (src, lab, samples[:2])], tmp_path / "prev.png", max_samples=6)
    im = Image.open(p)
    tile, g = 128, 2
    assert im.size == (8 * tile + 9 * g, 16 + 2 * (tile + g) + g)
    a = np.asarray(im.convert("RGB"))
    # overlay column is coloured where the label is, the source column is grey
    y0, x0 = 16, g + tile + g
    assert np.ptp(a[y0 + 30, x0 + 40].astype(int)) > 20
    assert np.ptp(a[y0 + 30, g + 40].astype(int)) == 0


def test_preview_boxes_and_other_sizes(tmp_path):
    src = np.zeros((1, 40, 40), np.float32)
    lab = np.zeros((40, 40), np.int64)
    samp = np.zeros((3, 64, 64), np.float32)  # generated at model size: resized to the source size
    p = make_preview([(src, lab, [samp])], tmp_path / "sub" / "p.png", boxes=[[(5, 5, 20, 20)]])
    im = Image.open(p)
    assert im.size == (3 * 160 + 4 * 2, 16 + 160 + 4)
