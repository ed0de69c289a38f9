"""Preview contact sheet."""
import numpy as np
from PIL import Image

from augpaint_fast.job.preview import OUTLINE, make_preview


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


def test_preview_outlines_the_given_box_on_resized_samples(tmp_path):
    """A 40x40 source is shown 4x (160 px tiles); its 64x64 sample is resized to the source size; the given
    box (5, 5)-(20, 20) is outlined on the label and sample tiles, nowhere else, and not on the source tile."""
    src = np.zeros((1, 40, 40), np.float32)
    lab = np.zeros((40, 40), np.int64)
    samp = np.ones((3, 64, 64), np.float32)  # white: generated at model size
    p = make_preview([(src, lab, [samp])], tmp_path / "sub" / "p.png", boxes=[[(5, 5, 20, 20)]])
    a = np.asarray(Image.open(p).convert("RGB")).astype(int)
    assert a.shape == (16 + 160 + 4, 3 * 160 + 4 * 2, 3)
    y0, scale = 16, 4

    def tile(col):
        x0 = 2 + col * (160 + 2)
        return a[y0:y0 + 160, x0:x0 + 160]

    outline = np.all(tile(2) == OUTLINE, axis=-1)
    ys, xs = np.nonzero(outline)
    assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (5 * scale, 20 * scale, 5 * scale, 20 * scale)
    assert np.all(tile(2)[~outline] == 255)  # the resized white sample everywhere else
    assert np.array_equal(np.all(tile(1) == OUTLINE, axis=-1), outline)
    assert not np.any(np.all(tile(0) == OUTLINE, axis=-1))


def test_preview_default_known_region_is_the_label_boxes(tmp_path):
    src = np.zeros((1, 32, 32), np.float32)
    lab = np.zeros((32, 32), np.int64)
    lab[4:9, 6:8] = 1
    lab[7, 20] = 1  # same class: one box over both pieces
    p = make_preview([(src, lab, [src])], tmp_path / "p.png")
    a = np.asarray(Image.open(p).convert("RGB")).astype(int)
    sample = a[16:16 + 128, 2 + 2 * 130: 2 + 2 * 130 + 128]
    ys, xs = np.nonzero(np.all(sample == OUTLINE, axis=-1))
    assert (ys.min() // 4, ys.max() // 4 + 1, xs.min() // 4, xs.max() // 4 + 1) == (4, 9, 6, 21)
