"""The fidelity measures on hand-made inputs: MMD is ~0 within a distribution and grows with a shift; the
known-region PSNR and differences are what the arithmetic says; sources are resized as sampling resizes them."""
import math

import numpy as np
import pytest

from augpaint_fast.data import resize_image, write_image_png, write_label_png
from augpaint_fast.data.fidelity import (compare_to_source, histogram_features, median_bandwidth, mmd2,
                                         pixel_features, psnr, real_halves_mmd2, source_rows, summarise)
from augpaint_fast.data.imageio import read_image


def test_mmd_is_near_zero_within_a_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 8))
    h = median_bandwidth(real)
    assert h == pytest.approx(16, rel=0.15)  # E|x - y|^2 = 2 * dim for standard normals
    same = mmd2(rng.normal(size=(200, 8)), real, h)
    assert abs(same) < 0.01 and abs(real_halves_mmd2(real, h)) < 0.02
    assert abs(mmd2(real, real, h)) < 0.02  # a set against itself: only the unbiased estimate's diagonal bias
    shifted = [mmd2(rng.normal(size=(200, 8)) + shift, real, h) for shift in (0.5, 1.0, 2.0)]
    assert same < shifted[0] < shifted[1] < shifted[2] and shifted[0] > 0.03


def test_mmd_needs_two_samples_per_set():
    with pytest.raises(ValueError, match="at least two"):
        mmd2(np.zeros((1, 3)), np.zeros((5, 3)), 1.0)


def test_psnr_and_differences_on_known_inputs():
    source = np.full((3, 8, 8), 100, np.uint8)
    known = np.zeros((8, 8), bool)
    known[2:6, 2:6] = True
    samples = np.repeat(source[None], 2, axis=0)
    samples[:, :, known] += 10  # every channel 10 levels off inside the known region ...
    samples[:, :, ~known] = 200  # ... and far off outside it, which the known-region PSNR ignores
    m = compare_to_source(source, known, samples)
    assert m["sse_inside"] / m["n_inside"] == 100
    assert summarise([{**m, "source": "a"}])["psnr_inside"] == pytest.approx(10 * math.log10(255 ** 2 / 100))
    assert m["mad_inside"] == pytest.approx(10) and m["mad_outside"] == pytest.approx(100)
    assert m["diversity_outside"] == 0
    assert m["detail_inside"] is None and m["detail_outside"] is None  # a flat source has no detail to keep
    assert psnr(0.0) == math.inf and psnr(255.0 ** 2) == 0


def test_whole_image_known_has_no_outside_measures():
    source = np.random.default_rng(3).integers(0, 256, size=(3, 4, 4), dtype=np.uint8)
    m = compare_to_source(source, np.ones((4, 4), bool), source[None])
    assert m["detail_inside"] == 1
    assert m["mad_outside"] is None and m["diversity_outside"] is None and m["detail_outside"] is None


def test_source_rows_resize_the_source_as_sampling_does(tmp_path):
    """A sample that is the source as sampling reads and resizes it matches it exactly (a paste-back's inside);
    a sample with noise in the known box has a finite known-region PSNR."""
    rng = np.random.default_rng(1)
    label = np.zeros((64, 64), np.int64)
    label[16:40, 20:44] = 1
    for sub in ("data/images", "data/labels", "exact/images", "both/images"):
        (tmp_path / sub).mkdir(parents=True)
    write_image_png(tmp_path / "data" / "images" / "a.png", rng.uniform(-1, 1, size=(3, 64, 64)))
    write_label_png(tmp_path / "data" / "labels" / "a.png", label)
    small = resize_image(read_image(tmp_path / "data" / "images" / "a.png"), 32)
    noisy = np.clip(small + rng.normal(0, 0.2, small.shape), -1, 1)
    write_image_png(tmp_path / "exact" / "images" / "a_0.png", small)
    for k, image in enumerate((small, noisy)):
        write_image_png(tmp_path / "both" / "images" / f"a_{k}.png", image)
    exact = summarise(source_rows(tmp_path / "data", tmp_path / "exact"))
    assert exact["psnr_inside"] == math.inf and exact["mad_inside"] == 0 and exact["detail_inside"] == 1
    both = summarise(source_rows(tmp_path / "data", tmp_path / "both"))
    assert both["sources"] == 1 and both["samples"] == 2 and 15 < both["psnr_inside"] < 40
    assert both["mad_outside"] > 0 and both["diversity_outside"] > 0


def test_histogram_features_see_blur_that_thumbnails_average_away():
    rng = np.random.default_rng(2)
    sharp = rng.uniform(-1, 1, size=(40, 3, 64, 64)).astype(np.float32)
    blurred = np.repeat(np.repeat(sharp[:, :, ::2, ::2], 2, axis=2), 2, axis=3)  # the same picture, coarser
    other = rng.uniform(-1, 1, size=(40, 3, 64, 64)).astype(np.float32)
    hist = histogram_features(sharp)
    h = median_bandwidth(hist)
    assert mmd2(histogram_features(blurred), hist, h) > 10 * abs(mmd2(histogram_features(other), hist, h))
    pix = pixel_features(sharp, sharp)
    assert pix.shape == (40, 3 * 32 * 32) and abs(pix.mean()) < 1e-6 and pix.std() == pytest.approx(1, rel=1e-3)
