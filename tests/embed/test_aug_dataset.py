"""AugPaintDataset: the same bit-identical pairs with 0 and 2 DataLoader workers, each generated once, cached in
the sampling job's layout (its bytes), and the documented MONAI example trains on it."""
import json
import multiprocessing
import pickle
import runpy
from pathlib import Path

import pytest
import torch

from augpaint_fast import AugPaintDataset
from augpaint_fast.errors import AugPaintError
from augpaint_fast.job.generate import SampleOptions, run_sampling

SETTINGS = dict(n_per_source=4, steps=3, batch_size=4, seed=11)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_monai_unet.py"


def _manifest_names(folder):
    return [json.loads(line)["name"] for line in (folder / "manifest.jsonl").read_text().splitlines()]


def _all_items(loader):
    return [(img.clone(), lab.clone()) for images, labels in loader for img, lab in zip(images, labels)]


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")  # DataLoader workers run at one thread: compare at the same count
def test_zero_and_two_workers_yield_the_same_pairs_and_generate_each_once(phantom_data, weights, tmp_path):
    one = AugPaintDataset(phantom_data, weights, cache_dir=tmp_path / "w0", **SETTINGS)
    assert len(one) == 3 + 12 and one.num_real == 3 and one.num_classes == 4
    sequential = [one[i] for i in range(len(one))]
    two = AugPaintDataset(phantom_data, weights, cache_dir=tmp_path / "w2", **SETTINGS)
    order = torch.randperm(len(two), generator=torch.Generator().manual_seed(0)).tolist()
    loader = torch.utils.data.DataLoader(two, batch_size=3, sampler=order, num_workers=2)
    epoch1 = _all_items(loader)
    for (image, label), i in zip(epoch1, order):
        assert torch.equal(image, sequential[i][0]) and torch.equal(label, sequential[i][1]), i
    for folder in (tmp_path / "w0", tmp_path / "w2"):  # one manifest line per pair: none generated twice
        names = _manifest_names(folder)
        assert len(names) == len(set(names)) == 12
        assert not list(folder.glob("*/.*.tmp"))
    epoch2 = _all_items(loader)
    assert len(_manifest_names(tmp_path / "w2")) == 12  # the second epoch generated nothing
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(epoch1, epoch2))
    image, label = sequential[3]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and label.dtype == torch.int64
    assert torch.equal(sequential[0][0], torch.from_numpy(one.sources[0].image))  # real items come first


def _read_all(data, barrier, order):
    barrier.wait(60)
    for i in order:
        data[i]


@pytest.mark.slow
def test_two_processes_racing_for_the_same_pairs_generate_each_once(phantom_data, weights, tmp_path):
    data = AugPaintDataset(phantom_data, weights, cache_dir=tmp_path / "c", include_real=False, **SETTINGS)
    # The parent has run a multi-threaded oneDNN call, as a trainer has before its loader forks: a child that
    # then ran one at the inherited thread count would hang in GNU OpenMP; the dataset drops to one thread.
    torch.nn.functional.conv2d(torch.ones(2, 16, 32, 32), torch.ones(16, 16, 3, 3), padding=1)
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    orders = [list(range(12)), list(range(11, -1, -1))]  # meet in the middle chunk, from both ends
    procs = [ctx.Process(target=_read_all, args=(data, barrier, order)) for order in orders]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(120)
    finally:
        for p in procs:  # a hung child must not outlive the test (pytest would wait for it at exit)
            p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    names = _manifest_names(tmp_path / "c")
    assert sorted(names) == sorted(it.name for it in data.items)  # all 12, none twice


@pytest.mark.slow
def test_the_cache_is_the_sampling_jobs_output_and_a_second_run_costs_nothing(phantom_data, weights, tmp_path):
    data = AugPaintDataset(phantom_data, weights, cache_dir=tmp_path / "cache", include_real=False,
                           **SETTINGS).prepare()
    opts = SampleOptions(n=4, steps=3, batch_size=4, seed=11)
    run_sampling(phantom_data, weights, tmp_path / "job", opts, progress=False)
    for kind in ("images", "labels"):
        for path in sorted((tmp_path / "job" / kind).glob("*.png")):
            assert path.read_bytes() == (tmp_path / "cache" / kind / path.name).read_bytes(), path.name
    again = AugPaintDataset(phantom_data, weights, cache_dir=tmp_path / "cache", include_real=False, **SETTINGS)
    items = [again[i] for i in range(len(again))]
    assert len(items) == 12 and again._generator is None  # no engine was loaded: every pair came from disk
    assert torch.equal(items[5][0], data[5][0])
    # the CLI resumes into the dataset's cache folder too (same settings): nothing left to do
    summary = run_sampling(phantom_data, weights, tmp_path / "cache", opts, progress=False)
    assert summary.written == 0 and summary.already_done == 12


@pytest.mark.slow
def test_dataset_pickles_without_its_engine_and_refuses_a_foreign_cache(phantom_data, weights, tmp_path):
    data = AugPaintDataset(phantom_data, weights, cache_dir=tmp_path / "c", **SETTINGS)
    data[len(data) - 1]  # loads an engine in this process
    copy = pickle.loads(pickle.dumps(data))
    assert copy._generator is None and copy._writer is None
    assert torch.equal(copy[len(copy) - 1][0], data[len(data) - 1][0])
    with pytest.raises(AugPaintError, match="was made with steps=3 but this run has steps=4"):
        AugPaintDataset(phantom_data, weights, cache_dir=tmp_path / "c", **{**SETTINGS, "steps": 4})
    with pytest.raises(AugPaintError, match="does not exist"):
        AugPaintDataset(tmp_path / "missing", weights, cache_dir=tmp_path / "d")
    with pytest.raises(IndexError):
        data[len(data)]


@pytest.mark.slow
def test_the_monai_example_trains_a_unet_on_it(phantom_data, tmp_path):
    torch.manual_seed(0)
    train = runpy.run_path(str(EXAMPLE))["train"]
    net, losses = train(phantom_data, None, n_per_source=2, epochs=4, steps=3, workers=0, cache_dir=tmp_path / "c")
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 4, 64, 64)


def test_the_default_cache_is_per_data_folder_and_settings_under_the_package_cache(phantom_data, weights, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setenv("AUGPAINT_FAST_CACHE", str(tmp_path / "pkg"))
    a = AugPaintDataset(phantom_data, weights, **SETTINGS)
    b = AugPaintDataset(phantom_data, weights, **{**SETTINGS, "seed": 12})
    assert a.cache_dir.parent == tmp_path / "pkg" / "datasets" and len(a.cache_dir.name) == 16
    assert b.cache_dir != a.cache_dir and (a.cache_dir / "run_config.json").is_file()
    assert AugPaintDataset(phantom_data, weights, **SETTINGS).cache_dir == a.cache_dir
