"""The pipeline end to end at toy sizes: results, resume without redoing, interruption, changed inputs."""
from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("monai")

from augpaint_fast.assets import SHIPPED_WEIGHTS  # noqa: E402
from augpaint_fast.data.phantom import make_phantom  # noqa: E402
from augpaint_fast.pipeline import run as pipeline  # noqa: E402
from augpaint_fast.pipeline.checks import model_variants  # noqa: E402
from augpaint_fast.pipeline.run import PipelineOptions, run_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    make_phantom(root / "data", n=4, seed=0, unlabelled=2, progress=False)
    make_phantom(root / "test", n=2, seed=1, progress=False)
    return root


def _opts(folders, out, **kw):
    base = dict(data=folders / "data", test=folders / "test", out=out, labelled=(1, 2), splits=1,
                methods=("unet", "augpaint"), weights=SHIPPED_WEIGHTS, n=2, steps=2, seg_epochs=2,
                seg_channels=4, progress=False)
    base.update(kw)
    return PipelineOptions(**base)


def _ran(messages):
    return [m.split("pipeline: ")[1].split(" ...")[0] for m in messages if m.endswith(" ...")]


@pytest.mark.slow
def test_results_then_a_rerun_skips_everything_and_a_changed_input_reruns_its_dependants(folders, tmp_path):
    methods = ("unet-noaug", "unet", "augpaint")
    log = []
    res = run_pipeline(_opts(folders, tmp_path / "run", methods=methods), log=log.append)
    ran = _ran(log)
    assert "k1-s0/labelled" in ran and "k2-s0/gen/augpaint" in ran and "k2-s0/filter/augpaint" in ran
    rows = {(r["budget"], r["method"], r["labelled"]) for r in res["summary"]}
    assert rows == {(b, m, k) for b in ("epochs", "steps") for m in methods for k in (1, 2)}
    for r in res["runs"]:
        assert 0.0 <= r["dice"] <= 1.0 and r["hd95"] >= 0
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk["summary"] == json.loads(json.dumps(res["summary"]))
    md = (tmp_path / "run" / "results.md").read_text()
    assert "| AugPaint + online aug |" in md and "| U-Net (labelled only) |" in md
    assert md.startswith("**Verdict**") and len(res["verdict"]) == 2  # one line per labelled count
    assert all("no interval, so no verdict" in line for line in res["verdict"])  # one split
    assert all(0.0 < r["known_fraction"] < 1.0 for r in res["runs"])  # phantom organs: boxes, not the whole image
    assert "- 1 labelled: the known region (mask box) covers " in md and set(res["known_region"]) == {1, 2}
    assert (tmp_path / "run" / "results.png").stat().st_size > 10_000
    # online augmentation on every segmenter but unet-noaug
    seg = tmp_path / "run" / "splits" / "k1-s0" / "seg"
    augment = {p.name.rsplit("-", 1)[0]: json.loads((p / "config.json").read_text())["training"]["settings"]["augment"]
               for p in seg.iterdir()}
    assert augment == {"unet-noaug": "none", "unet": "standard", "augpaint": "standard"}
    # every stage's wall time is recorded and reported, per kind of stage
    assert set(res["stage_seconds"]) == set(ran) and all(s >= 0 for s in res["stage_seconds"].values())
    assert {"generate (augpaint)", "filter", "train segmenters", "evaluate"} <= set(res["seconds"])
    assert "| train segmenters |" in md and "| total |" in md
    # augpaint's set (2 labelled + kept samples) decides the matched step count, applied to the baseline too
    steps = {(r["method"], r["budget"], r["labelled"]): r["steps"] for r in res["runs"]}
    assert steps[("unet", "steps", 2)] == steps[("augpaint", "steps", 2)] > steps[("unet", "epochs", 2)]

    log.clear()
    files = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file() and p.suffix != ".png"}
    again = run_pipeline(_opts(folders, tmp_path / "run", methods=methods), log=log.append)
    assert _ran(log) == [] and again["summary"] == res["summary"]
    now = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file() and p.suffix != ".png"}
    assert now == files  # the rerun of a finished run changes nothing: same results, same stage times

    (folders / "test" / "images" / "phantom_0000.png").write_bytes(
        (folders / "test" / "images" / "phantom_0001.png").read_bytes())  # the test set changed: re-evaluate only
    log.clear()
    run_pipeline(_opts(folders, tmp_path / "run", methods=methods), log=log.append)
    assert _ran(log) and all("/eval/" in name for name in _ran(log))

    log.clear()  # another online augmentation retrains the segmenters, not the samples
    run_pipeline(_opts(folders, tmp_path / "run", methods=methods, online_aug="none"), log=log.append)
    assert any("/seg/unet-" in n for n in _ran(log)) and not any("/gen/" in n or "labelled" in n for n in _ran(log))


@pytest.mark.slow
def test_an_interrupted_pipeline_resumes_without_redoing_finished_stages(folders, tmp_path, monkeypatch):
    calls = {"n": 0}
    from augpaint_fast.segmentation import train as seg_train

    original = seg_train.train_segmentation

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(seg_train, "train_segmentation", crash_on_third)
    log = []
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(_opts(folders, tmp_path / "run", labelled=(1,), seg_epochs=4), log=log.append)
    started = _ran(log)
    finished = {n for n in started if (tmp_path / "run" / "stages" / (n.replace("/", "__") + ".json")).exists()}
    assert finished == set(started[:-1])  # the stage in flight has no record
    log.clear()
    res = run_pipeline(_opts(folders, tmp_path / "run", labelled=(1,), seg_epochs=4), log=log.append)
    redone = _ran(log)
    assert redone[0] == started[-1] and not set(redone) & finished  # nothing that had finished runs again
    assert len(res["runs"]) == 4
    for path in (tmp_path / "run").rglob("*.json"):
        json.loads(path.read_text())  # no torn file


def test_bad_options_are_one_line_errors(folders, tmp_path):
    from augpaint_fast.errors import AugPaintError

    with pytest.raises(AugPaintError, match="unknown method"):
        run_pipeline(_opts(folders, tmp_path / "x", methods=("unet", "magic")))
    with pytest.raises(AugPaintError, match="cases have a labelled"):
        run_pipeline(_opts(folders, tmp_path / "y", labelled=(9,)))


def _autoencoder_only(tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(SHIPPED_WEIGHTS / "autoencoder", weights / "autoencoder")
    return weights


def test_only_the_ldms_the_methods_sample_with_are_needed(folders, tmp_path):
    """cond-augpaint alone needs no unconditional LDM (trained or given), augpaint+rand-aug does; a weights
    folder without a U-Net the methods need is refused in one line, with nothing written."""
    from augpaint_fast.errors import AugPaintError

    assert model_variants(("unet", "rand-aug")) == []
    assert model_variants(("unet", "cond-augpaint")) == ["cond"]
    assert model_variants(("augpaint+rand-aug", "cond-augpaint")) == ["uncond", "cond"]
    with pytest.raises(AugPaintError, match="unet"):
        run_pipeline(_opts(folders, tmp_path / "x", weights=_autoencoder_only(tmp_path)))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("kw, message", [
    (dict(dtype="int8"), "runs on --engine openvino, not torch"),
    (dict(dtype="float16", engine="openvino"), "runs on --engine torch, not openvino"),
    (dict(dtype="int8", engine="openvino", weights=None), "give that folder as --weights"),
    (dict(dtype="int8", engine="openvino", methods=("unet", "cond-augpaint")), "leave cond-augpaint out"),
])
def test_a_sampling_dtype_the_run_cannot_use_is_refused_before_anything_is_written(folders, tmp_path, kw, message):
    from augpaint_fast.errors import AugPaintError

    with pytest.raises(AugPaintError, match=message):
        run_pipeline(_opts(folders, tmp_path / "x", **kw))
    assert not (tmp_path / "x").exists()


def test_int8_sampling_without_its_export_is_refused_before_anything_is_written(folders, tmp_path, monkeypatch):
    """The int8 U-Net graphs (with caching, its two feature-caching graphs too) are looked up in the engine's
    export cache before the first stage; none there: the engine's own one-line error, naming export --int8."""
    from augpaint_fast.errors import AugPaintError

    pytest.importorskip("openvino")
    monkeypatch.setenv("AUGPAINT_FAST_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(AugPaintError, match="export --int8"):
        run_pipeline(_opts(folders, tmp_path / "x", dtype="int8", engine="openvino", cache_interval=3))
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_baselines_run_from_an_autoencoder_alone(folders, tmp_path):
    res = run_pipeline(_opts(folders, tmp_path / "run", methods=("unet", "rand-aug"), labelled=(1,),
                             budgets=("steps",), rand_aug_n=2, seg_epochs=1, weights=_autoencoder_only(tmp_path)))
    assert {r["method"] for r in res["runs"]} == {"unet", "rand-aug"}


@pytest.mark.slow
def test_augpaint_with_rand_aug_and_the_knobs_enter_their_stages(folders, tmp_path):
    """augpaint+rand-aug brings its parts; --real-repeat and --margin reach (only) the stages they change."""
    kw = dict(labelled=(1,), budgets=("steps",), methods=("augpaint+rand-aug",), rand_aug_n=2, real_repeat=2,
              margin=2, seg_epochs=1)
    log = []
    res = run_pipeline(_opts(folders, tmp_path / "run", **kw), log=log.append)
    assert {r["method"] for r in res["runs"]} == {"unet", "rand-aug", "augpaint", "augpaint+rand-aug"}
    sd = tmp_path / "run" / "splits" / "k1-s0"
    kept = {m: len(list((sd / "gen" / m / "kept" / "images").iterdir())) for m in ("rand-aug", "augpaint")}
    combined = sorted(p.name for p in (sd / "gen" / "augpaint+rand-aug" / "images").iterdir())
    assert len(combined) == kept["augpaint"]  # one Rand Aug copy of each kept AugPaint pair
    pairs = {r["method"]: r["train_pairs"] for r in res["runs"]}
    assert pairs == {"unet": 1, "rand-aug": 2 + kept["rand-aug"], "augpaint": 2 + kept["augpaint"],
                     "augpaint+rand-aug": 2 + kept["rand-aug"] + kept["augpaint"]}  # the real pair twice
    seg = next(p for p in (sd / "seg").iterdir() if p.name.startswith("augpaint+rand-aug-"))
    assert json.loads((seg / "config.json").read_text())["training"]["pairs"] == pairs["augpaint+rand-aug"]
    assert json.loads((tmp_path / "run" / "stages" / "k1-s0__gen__augpaint.json").read_text())["settings"]["margin"] == 2

    log.clear()
    run_pipeline(_opts(folders, tmp_path / "run", **{**kw, "margin": 0}), log=log.append)
    assert "k1-s0/gen/augpaint" in _ran(log) and "k1-s0/gen/rand-aug" not in _ran(log)
