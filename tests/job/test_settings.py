"""One record of the settings that fix a sample (``job.settings.SampleSettings``) behind a job's run_config,
the API's settings and the pipeline's sampling fingerprints, each stored exactly as before the record."""
from __future__ import annotations

from augpaint_fast.job.generate import SampleOptions, run_config
from augpaint_fast.job.settings import SampleSettings
from augpaint_fast.pipeline.run import PipelineOptions, sample_settings

DATA = {"sources": 2, "digest": "d"}


def test_run_config_keeps_its_keys_and_their_order():
    """run_config.json and every manifest line: the seven knobs always, the later ones only when changed."""
    config = run_config(SampleOptions(seed=3, batch_size=2, engine="onnx"), "sha", DATA)
    assert list(config.items()) == [("seed", 3), ("weights_sha256", "sha"), ("steps", 50), ("eta", 1.0),
                                    ("mask_mode", "box"), ("margin", 0), ("flip", "none"),
                                    ("output_size", "model"), ("paste_back", False), ("data", DATA)]
    opts = SampleOptions(variant="cond", engine_options={"dtype": "bf16", "cache_interval": 3})
    assert list(run_config(opts, "sha"))[-3:] == ["variant", "dtype", "cache_interval"]
    assert "dtype" not in run_config(SampleOptions(engine_options={"dtype": "fp32"}), "sha")


def test_options_and_record_round_trip():
    s = SampleSettings(steps=7, margin=2, flip="random", variant="cond", dtype="bf16", cache_interval=2)
    opts = SampleOptions.of(s, n=3, seed=5, engine="onnx")
    assert opts.settings == s
    assert (opts.n, opts.seed, opts.engine, opts.engine_options) == (3, 5, "onnx", {"dtype": "bf16", "cache_interval": 2})
    assert SampleSettings(dtype="float32") == SampleSettings(dtype="fp32") == SampleSettings()


def test_pipeline_sampling_stages_keep_their_settings_so_old_runs_resume(tmp_path):
    base = {"n": 30, "steps": 50, "mask_mode": "box", "seed": 0, "flip": "none", "paste_back": False,
            "engine": "torch"}
    opts = PipelineOptions(data=tmp_path, test=tmp_path, out=tmp_path / "run")
    assert sample_settings(opts, "augpaint").stage_settings(opts.n, opts.seed, opts.engine) == {
        **base, "variant": "uncond"}
    opts = PipelineOptions(data=tmp_path, test=tmp_path, out=tmp_path / "run", n=4, steps=9, mask="label",
                           margin=2, paste_back=True, seed=1, cache_interval=3)
    changed = {**base, "n": 4, "steps": 9, "mask_mode": "label", "seed": 1, "paste_back": True, "margin": 2,
               "cache_interval": 3}
    flip = sample_settings(opts, "augpaint-flip")
    assert flip.stage_settings(4, 1, "torch") == {**changed, "flip": "random", "variant": "uncond"}
    cond = sample_settings(opts, "cond-augpaint")
    assert cond.stage_settings(4, 1, "torch") == {**changed, "variant": "cond"}
    # and the job it runs has the options the pipeline gave it before the record existed
    assert SampleOptions.of(cond, n=4, seed=1, engine="torch") == SampleOptions(
        n=4, steps=9, mask_mode="label", seed=1, flip="none", paste_back=True, engine="torch", margin=2,
        variant="cond", engine_options={"cache_interval": 3})
