"""Dataset layout, 2-D formats, label checks and resizing."""
import numpy as np
import pytest
from PIL import Image

from augpaint_fast.data import (
    Dataset,
    Item,
    load_training_images,
    read_image,
    read_label,
    resize_pair,
    write_image_png,
    write_label_png,
)
from augpaint_fast.errors import AugPaintError


def _grey(h=12, w=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def _lab(h=12, w=10):
    lab = np.zeros((h, w), np.uint8)
    lab[2:6, 3:7] = 1
    lab[8:10, 1:4] = 2
    return lab


def _make(root, files):
    """files: {relative path: PIL image or ndarray (saved as .npy)}."""
    for rel, obj in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(obj, np.ndarray):
            np.save(p, obj)
        else:
            obj.save(p)
    return root


# ---------------------------------------------------------------- formats
def test_png_grey_round_trip(tmp_path):
    g = _grey()
    Image.fromarray(g).save(tmp_path / "a.png")
    x = read_image(tmp_path / "a.png")
    assert x.shape == (3, 12, 10) and x.dtype == np.float32
    assert np.array_equal(x[0], x[2])
    np.testing.assert_allclose(x[0], g / 127.5 - 1, atol=1e-6)
    write_image_png(tmp_path / "b.png", x)
    back = Image.open(tmp_path / "b.png")
    assert back.mode == "L" and np.array_equal(np.asarray(back), g)


def test_png_rgb_and_rgba(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    x = read_image(tmp_path / "rgb.png")
    write_image_png(tmp_path / "o.png", x)
    back = Image.open(tmp_path / "o.png")
    assert back.mode == "RGB" and np.array_equal(np.asarray(back), rgb)
    rgba = np.concatenate([rgb, np.full((8, 9, 1), 7, np.uint8)], -1)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), x)


def test_png_16bit_scaled_by_dtype_range(tmp_path):
    a = np.array([[0, 65535], [32768, 1000]], np.uint16).repeat(2, 0).repeat(2, 1)
    Image.fromarray(a).save(tmp_path / "a16.png")
    x = read_image(tmp_path / "a16.png")
    np.testing.assert_allclose(x[0], a / 65535 * 2 - 1, atol=1e-6)


def test_jpg_tiff_npy(tmp_path):
    g = _grey(16, 16)
    Image.fromarray(g).save(tmp_path / "a.jpg", quality=95)
    assert np.abs(read_image(tmp_path / "a.jpg")[0] - (g / 127.5 - 1)).mean() < 0.1
    Image.fromarray(g).save(tmp_path / "a.tif")
    np.testing.assert_allclose(read_image(tmp_path / "a.tif")[1], g / 127.5 - 1, atol=1e-6)
    f = np.linspace(0, 1000, 16 * 16, dtype=np.float32).reshape(16, 16)
    np.save(tmp_path / "f.npy", f)
    x = read_image(tmp_path / "f.npy")
    assert x.min() == -1 and x.max() == 1  # min-max normalised
    inr = np.linspace(-0.5, 0.5, 16 * 16, dtype=np.float32).reshape(1, 16, 16)
    np.save(tmp_path / "c.npy", inr)  # [C, H, W], already in range: kept
    np.testing.assert_array_equal(read_image(tmp_path / "c.npy")[2], inr[0])


def test_label_formats_and_0_255(tmp_path):
    Image.fromarray(_lab()).save(tmp_path / "l.png")
    assert np.array_equal(read_label(tmp_path / "l.png"), _lab())
    assert read_label(tmp_path / "l.png").dtype == np.int64
    Image.fromarray(((_lab() > 0) * 255).astype(np.uint8)).save(tmp_path / "m.png")
    assert set(np.unique(read_label(tmp_path / "m.png"))) == {0, 1}
    np.save(tmp_path / "l.npy", _lab().astype(np.float32))
    assert np.array_equal(read_label(tmp_path / "l.npy"), _lab())
    write_label_png(tmp_path / "w.png", _lab())
    assert np.array_equal(read_label(tmp_path / "w.png"), _lab())
    with pytest.raises(AugPaintError):
        write_label_png(tmp_path / "x.png", np.full((4, 4), 300))


def test_label_refusals(tmp_path):
    ramp = np.tile(np.arange(0, 200, dtype=np.uint8), (8, 1))
    Image.fromarray(ramp).convert("RGB").save(tmp_path / "x.jpg", quality=70)
    with pytest.raises(AugPaintError, match=r"has \d+ distinct values; a label must be a class map with at most 16 "
                                            r"classes \(--max-classes\)"):
        read_label(tmp_path / "x.jpg", 16, display="labels/x.jpg")
    np.save(tmp_path / "neg.npy", np.array([[0, -1], [1, 2]]))
    with pytest.raises(AugPaintError, match="negative"):
        read_label(tmp_path / "neg.npy")
    np.save(tmp_path / "frac.npy", np.array([[0, 0.5], [1, 2]]))
    with pytest.raises(AugPaintError, match="non-integer"):
        read_label(tmp_path / "frac.npy")


# ---------------------------------------------------------------- dataset
def _good_root(tmp_path):
    root = tmp_path / "ds"
    return _make(root, {
        "images/b.png": Image.fromarray(_grey()),
        "labels/b.png": Image.fromarray(_lab()),
        "images/a.jpg": Image.fromarray(_grey(seed=2)),
        "labels/a.png": Image.fromarray(((_lab() > 0) * 255).astype(np.uint8)),
        "images/c.npy": np.random.default_rng(0).random((12, 10)).astype(np.float32),
        "labels/c.npy": _lab().astype(np.int32),
        "unlabelled/u.png": Image.fromarray(_grey(20, 20)),
    })


def test_dataset_open_load_validate(tmp_path):
    root = _good_root(tmp_path)
    (root / "images" / "readme.txt").write_text("ignored")
    ds = Dataset.open(root)
    assert [i.id for i in ds.labelled] == ["a", "b", "c"]  # sorted; readme.txt ignored
    assert [i.id for i in ds.unlabelled] == ["u"]
    assert isinstance(ds.labelled[0], Item) and ds.unlabelled[0].label_path is None
    s = ds.load(ds.labelled[0])
    assert s.image.shape == (3, 12, 10) and s.label.dtype == np.int64 and s.source_size == (12, 10)
    summary = ds.validate(size=8)
    assert summary.items == len(ds.labelled) and summary.classes == [1, 2]


def test_missing_label_and_orphan_label(tmp_path):
    root = _make(tmp_path / "ds", {"images/x.png": Image.fromarray(_grey()), "labels/y.png": Image.fromarray(_lab())})
    with pytest.raises(AugPaintError, match=r"image images/x.png has no label in labels/"):
        Dataset.open(root)


def test_empty_root_and_no_images(tmp_path):
    with pytest.raises(AugPaintError, match="does not exist"):
        Dataset.open(tmp_path / "nope")
    (tmp_path / "e").mkdir()
    with pytest.raises(AugPaintError, match="no images/ folder"):
        Dataset.open(tmp_path / "e")
    (tmp_path / "e" / "images").mkdir()
    with pytest.raises(AugPaintError, match="has no images"):
        Dataset.open(tmp_path / "e")


def test_size_mismatch(tmp_path):
    root = _make(tmp_path / "ds", {"images/x.png": Image.fromarray(_grey(64, 64)),
                                   "labels/x.png": Image.fromarray(np.zeros((60, 64), np.uint8))})
    ds = Dataset.open(root)
    with pytest.raises(AugPaintError, match=r"images/x.png: image is 64x64 but its label labels/x.png is 60x64"):
        ds.validate()


def test_jpeg_label_refused_in_validate(tmp_path):
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))
    root = _make(tmp_path / "ds", {"images/x.png": Image.fromarray(_grey(64, 64)),
                                   "labels/x.jpg": Image.fromarray(ramp)})
    with pytest.raises(AugPaintError, match=r"^labels/x.jpg has \d+ distinct values; a label must be a class map"):
        Dataset.open(root).validate()


def test_truncated_png(tmp_path):
    root = _make(tmp_path / "ds", {"images/x.png": Image.fromarray(_grey(64, 64)),
                                   "labels/x.png": Image.fromarray(np.zeros((64, 64), np.uint8))})
    data = (root / "images/x.png").read_bytes()
    (root / "images/x.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(AugPaintError, match="images/x.png") as e:
        Dataset.open(root).validate()
    assert "\n" not in str(e.value)


def test_nan_npy(tmp_path):
    img = np.zeros((8, 8), np.float32)
    img[3, 3] = np.nan
    root = _make(tmp_path / "ds", {"images/x.npy": img, "labels/x.npy": np.zeros((8, 8), np.uint8)})
    with pytest.raises(AugPaintError, match="images/x.npy contains NaN"):
        Dataset.open(root).validate()


def test_resize_pair():
    img = np.random.default_rng(0).uniform(-1, 1, (3, 40, 30)).astype(np.float32)
    lab = np.zeros((40, 30), np.int64)
    lab[10:30, 5:20] = 3
    i2, l2 = resize_pair(img, lab, 20)
    assert i2.shape == (3, 20, 20) and l2.shape == (20, 20) and l2.dtype == np.int64
    assert set(np.unique(l2)) == {0, 3}
    assert abs(i2.mean() - img.mean()) < 0.05  # antialiased
    i3, l3 = resize_pair(img, lab, (80, 60))
    assert i3.shape == (3, 80, 60) and np.array_equal(l3[::2, ::2], lab)


def test_load_training_images(tmp_path):
    root = _good_root(tmp_path)
    x = load_training_images(root, 16, progress=False)
    assert x.shape == (4, 3, 16, 16) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1


def test_orphan_label(tmp_path):
    root = _make(tmp_path / "ds", {"images/x.png": Image.fromarray(_grey()), "labels/x.png": Image.fromarray(_lab()),
                                   "labels/y.png": Image.fromarray(_lab())})
    with pytest.raises(AugPaintError, match=r"label labels/y.png has no image in images/"):
        Dataset.open(root)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 9), st.integers(2, 9), st.booleans(), st.integers(0, 2**32 - 1))
def test_png_write_read_within_one_level(h, w, grey, seed):
    import tempfile
    from pathlib import Path

    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.2, 1.2, (1 if grey else 3, h, w)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        write_image_png(Path(d) / "x.png", x)
        back = read_image(Path(d) / "x.png")
    exp = np.clip(np.broadcast_to(x, (3, h, w)), -1, 1)
    assert np.abs(back - exp).max() <= 1 / 127.5 + 1e-6
