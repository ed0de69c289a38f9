"""How faithful generated images are: to their own source image, and to the real images as a distribution.

Against the source (one sampling job's output, ``GEN/images/<id>_<k>.png``, beside the dataset folder of its
sources): each source is read and resized to its samples' size as sampling reads it (:func:`read_image`,
:func:`resize_image`), and its label gives the known region (:func:`known_mask`, mask mode and margin as
sampled). Per source, :func:`compare_to_source` measures, in 8-bit levels (0-255):

- ``mad_inside`` / ``mad_outside``: mean absolute difference to the source (grey) inside / outside the known
  region; ``diversity_outside``: the per-pixel std across the source's samples outside it (grey);
- ``detail_inside`` / ``detail_outside``: the samples' mean |Laplacian| as a fraction of the source's (grey;
  1 = as sharp as the source, the autoencoder's round trip lowers it);
- ``sse_inside`` / ``n_inside``: squared RGB error summed over the known pixels and channels of all samples, so
  :func:`summarise` can give the known-region PSNR of the pooled error, ``10 log10(255^2 / MSE)`` (finite even
  with ``--paste-back``: its feathered edge blends the sample into the source).

Against the real images (:func:`mmd2`): the unbiased estimate of the squared maximum mean discrepancy with an
RBF kernel ``exp(-|x - y|^2 / h)``, in a feature space that depends only on the images: every image resized
to 64x64 (:data:`FEATURE_SIZE`), then :func:`pixel_features` (32x32 RGB, each channel standardised by the
reference images' mean and std) or :func:`histogram_features` (per-channel colour histograms and a histogram
of grey |Laplacian|, each square-rooted, so the Euclidean distance sums Hellinger distances; it sees blur that
a 32x32 thumbnail averages away). The bandwidth ``h`` is the median squared distance between the reference (real)
images, fixed per dataset so values from different runs compare. MONAI's ``MMDMetric`` is not used: its
kernel is linear, so it only compares the two sets' mean images. The estimate is ~0 for two samples of one
distribution (it can be slightly negative); :func:`real_halves_mmd2` gives that noise level for the real set.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..core.masks import known_mask
from .dataset import resize_image, resize_label
from .imageio import IMAGE_SUFFIXES, read_image, read_label, to_uint8

FEATURE_SIZE = 64  # every image is compared at 64x64, whatever the generator's resolution
_COLOUR_BINS = 16
_DETAIL_EDGES = np.array([0, 1, 2, 3, 4, 6, 8, 11, 16, 22, 32, 45, 64, 90, 128, 181, np.inf])  # ~sqrt(2) steps


def grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma (PIL's ``convert("L")`` weights, unrounded) of uint8 ``[..., 3, H, W]``, float64 0-255."""
    x = np.asarray(rgb, dtype=np.float64)
    return (299 * x[..., 0, :, :] + 587 * x[..., 1, :, :] + 114 * x[..., 2, :, :]) / 1000


def detail(image: np.ndarray) -> np.ndarray:
    """Per-pixel |Laplacian| of a grey ``[H, W]`` image: large on texture and edges, small where it is smooth."""
    return np.abs(ndimage.laplace(image))


def psnr(mse: float, peak: float = 255.0) -> float:
    """``10 log10(peak^2 / mse)`` in dB; inf for a zero error."""
    return float("inf") if mse == 0 else float(10 * np.log10(peak ** 2 / mse))


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def compare_to_source(source: np.ndarray, known: np.ndarray, samples: np.ndarray) -> dict:
    """The measures of one source (module docstring): ``source`` uint8 ``[3, H, W]``, ``known`` bool ``[H, W]``
    (non-empty), ``samples`` uint8 ``[N, 3, H, W]``. ``*_outside`` are None when the known region is everything,
    a detail ratio is None where the source is flat (no detail to keep)."""
    src, gen = grey(source), grey(samples)
    diff = np.abs(gen - src)
    src_detail, gen_detail = detail(src), np.mean([detail(x) for x in gen], axis=0)
    err = (samples.astype(np.float64) - source.astype(np.float64))[:, :, known]
    out = {"samples": len(samples), "mad_inside": diff[:, known].mean(),
           "detail_inside": _ratio(gen_detail[known].mean(), src_detail[known].mean()),
           "sse_inside": float(np.square(err).sum()), "n_inside": err.size,
           "mad_outside": None, "diversity_outside": None, "detail_outside": None}
    if (~known).any():
        out.update(mad_outside=diff[:, ~known].mean(), diversity_outside=gen[:, ~known].std(axis=0).mean(),
                   detail_outside=_ratio(gen_detail[~known].mean(), src_detail[~known].mean()))
    return out


def _find(folder: Path, stem: str) -> Path:
    return next(p for p in sorted(folder.glob(stem + ".*")) if p.suffix.lower() in IMAGE_SUFFIXES)


def source_rows(data: Path, gen: Path, mask: str = "box", margin: int = 0) -> list[dict]:
    """:func:`compare_to_source` for every source of the sampling output ``gen`` (sources in ``data``);
    sources whose known region is empty (no foreground) are skipped, as sampling skips them."""
    by_source = defaultdict(list)
    for path in sorted((Path(gen) / "images").glob("*.png")):
        by_source[path.stem.rsplit("_", 1)[0]].append(to_uint8(read_image(path)))
    rows = []
    for sid, samples in sorted(by_source.items()):
        stack = np.stack(samples)
        size = stack.shape[2:]
        source = to_uint8(resize_image(read_image(_find(Path(data) / "images", sid)), size))
        label = resize_label(read_label(_find(Path(data) / "labels", sid)), size)
        known = known_mask(label, mask, margin) > 0
        if known.any():
            rows.append({"source": sid, **compare_to_source(source, known, stack)})
    return rows


def summarise(rows: list[dict]) -> dict:
    """Means over sources of :func:`source_rows` measures (``*_outside`` over the sources that have an
    outside), and ``psnr_inside``: the known-region PSNR (dB) of the squared error pooled over all samples."""
    def mean(key):
        values = [r[key] for r in rows if r[key] is not None]
        return float(np.mean(values)) if values else float("nan")

    keys = ("mad_inside", "mad_outside", "diversity_outside", "detail_inside", "detail_outside")
    sse, n = sum(r["sse_inside"] for r in rows), sum(r["n_inside"] for r in rows)
    return {"sources": len(rows), "samples": sum(r["samples"] for r in rows), **{k: mean(k) for k in keys},
            "psnr_inside": psnr(sse / n) if n else float("nan")}


# ---------------------------------------------------------------------------------- distribution distance
def feature_images(paths) -> np.ndarray:
    """Images as float32 ``[N, 3, 64, 64]`` in [-1, 1], read and resized as sampling reads them."""
    return np.stack([resize_image(read_image(p), FEATURE_SIZE) for p in paths])


def pixel_features(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``[N, 3 * 32 * 32]``: 2x2 means of 64x64 images, each channel standardised by ``reference``'s
    (images in the same layout) mean and std over images and pixels."""
    def thumbs(x):
        x = np.asarray(x, dtype=np.float64)
        return x.reshape(*x.shape[:2], x.shape[2] // 2, 2, x.shape[3] // 2, 2).mean(axis=(3, 5))

    ref = thumbs(reference)
    mean, std = ref.mean(axis=(0, 2, 3), keepdims=True), ref.std(axis=(0, 2, 3), keepdims=True) + 1e-8
    return ((thumbs(images) - mean) / std).reshape(len(images), -1)


def histogram_features(images: np.ndarray) -> np.ndarray:
    """``[N, 3 * 16 + 16]``: per-channel 16-bin colour histograms and a histogram of grey |Laplacian| (8-bit
    levels, bins about sqrt(2) apart), each normalised to sum 1 and square-rooted."""
    out = []
    for image in to_uint8(images):
        parts = [np.histogram(c, bins=_COLOUR_BINS, range=(0, 256))[0] for c in image]
        parts.append(np.histogram(detail(grey(image)), bins=_DETAIL_EDGES)[0])
        out.append(np.concatenate([np.sqrt(p / p.sum()) for p in parts]))
    return np.asarray(out)


def _sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xx, yy = np.square(x).sum(1)[:, None], np.square(y).sum(1)[None, :]
    return np.maximum(xx + yy - 2 * x @ y.T, 0.0)


def median_bandwidth(reference: np.ndarray) -> float:
    """The median squared distance between distinct rows of ``reference`` (the RBF kernel's ``h``)."""
    d = _sq_dists(reference, reference)
    return float(np.median(d[np.triu_indices(len(reference), 1)]))


def mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Unbiased squared MMD between feature rows ``x`` and ``y`` (each >= 2 rows), kernel ``exp(-d^2 / h)``."""
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"MMD needs at least two samples per set, got {len(x)} and {len(y)}")
    kxx, kyy, kxy = (np.exp(-_sq_dists(a, b) / bandwidth) for a, b in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def real_halves_mmd2(real: np.ndarray, bandwidth: float, seed: int = 0) -> float:
    """:func:`mmd2` between two random halves of ``real``: what "the same distribution" reads at this size."""
    order = np.random.default_rng(seed).permutation(len(real))
    half = len(real) // 2
    return mmd2(real[order[:half]], real[order[half:]], bandwidth)


__all__ = ["FEATURE_SIZE", "compare_to_source", "detail", "feature_images", "grey", "histogram_features",
           "median_bandwidth", "mmd2", "pixel_features", "psnr", "real_halves_mmd2", "source_rows", "summarise"]
