"""The embedding API: pairs equal the sampling job's bytes, content-derived ids, thread safety, clear errors."""
import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest
import torch
from PIL import Image

import augpaint_fast
from augpaint_fast.embed.api import from_pretrained
from augpaint_fast.embed.batcher import QueueFull
from augpaint_fast.data import read_image, read_label
from augpaint_fast.errors import AugPaintError
from augpaint_fast.job.generate import SampleOptions, run_sampling

STEPS, BATCH = 3, 4
TIMEOUT = 120


@pytest.fixture(scope="module")
def aug(weights):
    with from_pretrained(weights, steps=STEPS, batch_size=BATCH, max_wait_ms=20) as a:
        yield a


def _source(phantom_data, i):
    return phantom_data / "images" / f"phantom_{i:04d}.png", phantom_data / "labels" / f"phantom_{i:04d}.png"


@pytest.mark.slow
def test_package_root_exports_are_lazy():
    import subprocess
    import sys

    code = "import sys, augpaint_fast; assert 'torch' not in sys.modules; augpaint_fast.from_pretrained; " \
           "augpaint_fast.AugPaintDataset; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=TIMEOUT)
    assert augpaint_fast.from_pretrained is from_pretrained


def test_pairs_are_the_sampling_jobs_bytes(aug, phantom_data, weights, tmp_path):
    run_sampling(phantom_data, weights, tmp_path / "job", SampleOptions(n=3, steps=STEPS, batch_size=BATCH, seed=5),
                 progress=False)
    image, label = _source(phantom_data, 1)
    pairs = aug.augment(image, label, n=3, seed=5, source_id="phantom_0001", timeout=TIMEOUT)
    assert [p.name for p in pairs] == [f"phantom_0001_{k}" for k in range(3)]
    for p in pairs:
        image_png, label_png = p.png()
        assert image_png == (tmp_path / "job" / "images" / f"{p.name}.png").read_bytes()
        assert label_png == (tmp_path / "job" / "labels" / f"{p.name}.png").read_bytes()
        assert p.image.dtype == np.float32 and p.image.shape == (3, 64, 64) and p.label.dtype == np.int64
        img_t, lab_t = p.tensors()
        assert img_t.shape == (3, 64, 64) and lab_t.dtype == torch.int64
    more = aug.augment(image, label, n=1, seed=5, source_id="phantom_0001", start=2, timeout=TIMEOUT)
    assert more[0].k == 2 and more[0].png() == pairs[2].png()


def test_the_same_pixels_get_the_same_id_and_pairs_whatever_the_container(aug, phantom_data):
    image_path, label_path = _source(phantom_data, 0)
    grey = np.asarray(Image.open(image_path))  # uint8 [H, W]
    label = np.asarray(Image.open(label_path))
    as_path = aug.augment(image_path, label_path, n=2, seed=1, timeout=TIMEOUT)
    as_uint8 = aug.augment(grey, label, n=2, seed=1, timeout=TIMEOUT)
    as_tensor = aug.augment(torch.from_numpy(read_image(image_path)), torch.from_numpy(read_label(label_path)),
                            n=2, seed=1, timeout=TIMEOUT)
    ids = {p.source_id for p in as_path + as_uint8 + as_tensor}
    assert len(ids) == 1 and ids.pop().startswith("mem-")
    assert [p.png() for p in as_path] == [p.png() for p in as_uint8] == [p.png() for p in as_tensor]
    other = aug.augment(grey[:, ::-1], label[:, ::-1], n=1, seed=1, timeout=TIMEOUT)[0]
    assert other.source_id != as_path[0].source_id


@pytest.mark.slow
def test_concurrent_callers_get_the_bytes_of_sequential_calls_packed_into_shared_batches(aug, phantom_data):
    sources = [_source(phantom_data, i) for i in range(3)]
    expected = {(i, k): aug.augment(*sources[i], n=1, seed=7, start=k, timeout=TIMEOUT)[0].png()
                for i in range(3) for k in range(4)}
    before = aug.stats()
    got, errors = {}, []

    def client(c):
        try:
            for r in range(4):
                i, k = (c + r) % 3, (c * 4 + r) % 4
                got[(c, r)] = ((i, k), aug.augment(*sources[i], n=1, seed=7, start=k, timeout=TIMEOUT)[0].png())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not errors and len(got) == 32
    assert all(png == expected[key] for key, png in got.values())
    after = aug.stats()
    batches, samples = after["batches"] - before["batches"], after["samples"] - before["samples"]
    assert samples == 32 and batches < 32  # several callers' samples shared engine batches


def test_batch_form_over_many_sources(aug, phantom_data):
    sources = [_source(phantom_data, 0), ("case-b", *_source(phantom_data, 1))]
    out = aug.augment_batch(sources, n=2, seed=3, timeout=TIMEOUT)
    assert [len(pairs) for pairs in out] == [2, 2]
    assert out[1][0].name == "case-b_0" and out[0][0].source_id.startswith("mem-")
    assert out[0][1].png() == aug.augment(*_source(phantom_data, 0), n=1, seed=3, start=1, timeout=TIMEOUT)[0].png()


def test_bad_input_is_one_clear_error(aug, phantom_data):
    image, label = _source(phantom_data, 0)
    small = np.ones((32, 32), np.int64)
    with pytest.raises(AugPaintError, match="the image is 64x64 but its label is 32x32"):
        aug.augment(image, small)
    with pytest.raises(AugPaintError, match="no foreground"):
        aug.augment(image, np.zeros((64, 64), np.int64))
    with pytest.raises(AugPaintError, match="contains NaN"):
        aug.augment(np.full((64, 64), np.nan), label)
    with pytest.raises(AugPaintError, match="at most 16 classes"):
        aug.augment(image, np.arange(64 * 64).reshape(64, 64))
    with pytest.raises(AugPaintError, match="n must be an integer >= 1"):
        aug.augment(image, label, n=0)
    with pytest.raises(AugPaintError, match="seed must be an unsigned 32-bit integer"):
        aug.augment(image, label, seed=-1)
    with pytest.raises(AugPaintError, match="not usable as a file stem"):
        aug.augment(image, label, source_id="../x")
    with pytest.raises(AugPaintError, match="does not exist"):
        aug.augment(phantom_data / "nope.png", label)


def test_full_queue_refuses_at_once_and_requests_can_be_cancelled_or_time_out(weights, phantom_data):
    image, label = _source(phantom_data, 0)
    with from_pretrained(weights, steps=STEPS, batch_size=2, max_queue=4, max_wait_ms=0) as small:
        with pytest.raises(QueueFull, match="exceeds the queue's capacity of 4"):
            small.augment(image, label, n=5)
        first = small.submit(image, label, n=4, seed=0)  # 2 batches: the second waits in the queue
        deadline = time.monotonic() + TIMEOUT
        while small.stats()["queue_depth"] > 2 and time.monotonic() < deadline:  # the worker took a batch
            time.sleep(0.001)
        second = small.submit(image, label, n=2, seed=1)
        second.cancel()
        with pytest.raises(CancelledError):
            second.result(0)
        with pytest.raises(TimeoutError, match="was cancelled"):
            small.augment(image, label, n=2, seed=2, timeout=1e-4)
        assert len(first.result(TIMEOUT)) == 4
        stats = small.stats()
        assert stats["requests"]["cancelled"] == 2 and stats["settings"]["steps"] == STEPS


def test_settings_are_the_sample_record_plus_the_engine_and_batch_size(aug):
    """``settings`` holds every field of the record a job's run_config is written from, variant, dtype and
    cache_interval included, plus what only the API fixes (batch size, engine and its options)."""
    from augpaint_fast.job.generate import run_config

    s = aug.settings
    assert {k: s[k] for k in ("variant", "dtype", "cache_interval")} == {"variant": "uncond", "dtype": None,
                                                                         "cache_interval": 1}
    assert (s["steps"], s["batch_size"], s["engine"], s["engine_options"]) == (STEPS, BATCH, "torch", {})
    config = run_config(aug.generator.opts, aug.weights_sha256)
    assert {k: v for k, v in s.items() if k in config} == {k: v for k, v in config.items() if k != "seed"}
