"""Tiny inputs for the segmentation tests: 32x32 phantoms, a generated-style folder, a 4-channel U-Net run."""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("monai")

from augpaint_fast.data import Dataset, OutputWriter  # noqa: E402
from augpaint_fast.data.phantom import make_phantom  # noqa: E402
from augpaint_fast.segmentation.train import train_segmentation  # noqa: E402

SIZE = 32
TINY = dict(size=SIZE, channels=4, num_res_units=1, steps=6, checkpoint_every=2, device="cpu", progress=False)


@pytest.fixture(scope="session")
def seg_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seg_train")
    make_phantom(root, n=6, seed=1, size=SIZE, progress=False)
    return root


@pytest.fixture(scope="session")
def seg_test(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seg_test")
    make_phantom(root, n=4, seed=2, size=SIZE, progress=False)
    return root


def write_generated(out: Path, data: Path, n: int = 3, jitter: float = 0.2, seed: int = 0) -> Path:
    """A folder in the layout of ``sample``: noisy copies of each labelled pair, one manifest record each."""
    ds = Dataset.open(data)
    rng = np.random.default_rng(seed)
    with OutputWriter(out, {"test": "generated"}) as w:
        for item in ds.labelled:
            s = ds.load(item)
            for k in range(n):
                img = np.clip(s.image + rng.normal(0, jitter * k, s.image.shape), -1, 1).astype(np.float32)
                w.write_pair(f"{item.id}_{k}", img, s.label, {"source": item.id, "k": k})
    return out


@pytest.fixture(scope="session")
def generated(tmp_path_factory, seg_data) -> Path:
    return write_generated(tmp_path_factory.mktemp("gen") / "samples", seg_data)


@pytest.fixture(scope="session")
def seg_run(tmp_path_factory, seg_data) -> Path:
    run = tmp_path_factory.mktemp("seg_run") / "run"
    train_segmentation([seg_data], run, **{**TINY, "steps": 30})
    return run
