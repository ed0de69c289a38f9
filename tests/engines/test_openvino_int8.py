"""The int8 U-Net (``export.int8``, ``--engine openvino --dtype int8``): the one-line refusals (NNCF missing, no
int8 export yet), the export cache, the int8 bound against float32, with feature caching too.

Stated tolerances (shipped tiny weights, calibrated on the 3-phantom fixture, 3 images x 10 steps, the default
recipe: MINMAX activation ranges + SmoothQuant, attention in float32; encoder and decoder stay float32),
measured on a 2-core AVX2 AMD EPYC without VNNI (OpenVINO's int8 kernels differ by ISA, hence the margins; the
recipe before the range and SmoothQuant levers measured 0.121, 12.0 grey and -2.10 dB, docs/int8.md):
- one U-Net call against the float32 torch U-Net: max |diff| / max |reference| <= 0.05 (measured 0.013; each
  caching graph's eps too: 0.0076 full, 0.0071 shallow);
- full 10-step sampling runs on 3 phantoms x 2 samples against the torch float32 run of the same seed: labels
  byte-identical, mean |diff| <= 3 grey levels (measured 0.67) and known-region PSNR within 0.5 dB (measured
  -0.05 dB: 27.63 vs 27.68): issue 18's exact tolerance, which int8 now meets on these weights (bf16's own
  bound is 0.5 grey, 0.5 dB; tests/engines/test_openvino_engine.py).
"""
from __future__ import annotations

import json

import pytest
import torch

from augpaint_fast.cli.main import main
from augpaint_fast.engines import create_engine
from augpaint_fast.errors import AugPaintError
from augpaint_fast.export.int8 import Calibration
from tests.engines._models import random_models

pytest.importorskip("openvino")
pytest.importorskip("onnx")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("augpaint-fast: error: ")
    return err[0]


def test_export_int8_without_nncf_fails_at_once_naming_the_extra(no_nncf, weights, phantom_data, tmp_path, capsys):
    out = tmp_path / "cache"
    assert main(["export", "--weights", str(weights), "--out", str(out), "--int8", "--calibrate",
                 str(phantom_data)]) == 2
    line = _one_line_error(capsys)
    assert "int8 quantization needs nncf" in line and "pip install 'augpaint-fast[int8]'" in line
    assert not out.exists() or not any(out.iterdir())  # nothing exported before the refusal

    from augpaint_fast.export.command import export_models

    never = Calibration({}, lambda: pytest.fail("calibrated without nncf"))
    with pytest.raises(AugPaintError, match=r"augpaint-fast\[int8\]"):
        export_models(weights, "onnx", out, int8=never)
    assert not out.exists() or not any(out.iterdir())


def test_dtype_int8_without_nncf_or_export_is_one_line(no_nncf, phantom_data, weights, tmp_path, capsys):
    assert main(["sample", "--data", str(phantom_data), "--weights", str(weights), "--out", str(tmp_path / "o"),
                 "--engine", "openvino", "--dtype", "int8", "--engine-cache", str(tmp_path / "c")]) == 2
    line = _one_line_error(capsys)
    assert "nncf" in line and "pip install 'augpaint-fast[int8]'" in line
    assert not (tmp_path / "o" / "manifest.jsonl").exists()


def test_dtype_int8_without_an_int8_export_says_how_to_make_one(tmp_path):
    ae, unet = random_models("tiny")
    with pytest.raises(AugPaintError, match="no int8 U-Net of these weights") as info:
        create_engine("openvino", ae, unet, dtype="int8", cache_dir=tmp_path)
    assert "export --int8 --calibrate DATA" in str(info.value) and "\n" not in str(info.value)
    assert not list(tmp_path.glob("*.onnx"))  # refused before exporting anything
    with pytest.raises(AugPaintError, match="no int8 U-Net of these weights"):  # caching reads int8 graphs too
        create_engine("openvino", ae, unet, dtype="int8", cache_dir=tmp_path, cache_interval=3)
    assert not list(tmp_path.glob("*.onnx"))
    with pytest.raises(AugPaintError, match="openvino engine"):
        create_engine("torch", ae, unet, dtype="int8")
    # export --int8 makes no conditional U-Net: say so, not "make one with export --int8"
    ae, cond_unet = random_models("tiny", cond_channels=3)
    with pytest.raises(AugPaintError, match="int8 covers the unconditional U-Net only") as info:
        create_engine("openvino", ae, cond_unet, dtype="int8", cache_dir=tmp_path)
    assert "--variant cond" in str(info.value) and not list(tmp_path.glob("*.onnx"))


def test_int8_and_calibrate_go_together(weights, phantom_data, tmp_path, capsys):
    for extra in (["--int8"], ["--calibrate", str(phantom_data)]):
        assert main(["export", "--weights", str(weights), "--out", str(tmp_path / "c"), *extra]) == 2
        assert "--int8 and --calibrate DATA go together" in _one_line_error(capsys)
    pytest.importorskip("nncf")
    assert main(["export", "--weights", str(weights), "--out", str(tmp_path / "c"), "--int8", "--calibrate",
                 str(phantom_data), "--calibration-images", "0"]) == 2
    assert "--calibration-images must be >= 1" in _one_line_error(capsys)
    assert not (tmp_path / "c").exists()


# -- calibrated on the shipped weights (NNCF) ------------------------------------------------------------------
CALIBRATION = dict(images=3, steps=10)


@pytest.fixture(scope="module")
def int8_cache(weights, phantom_data, tmp_path_factory):
    """A cache with the float32 exports and the int8 U-Net of the shipped weights, and the calibration used."""
    pytest.importorskip("nncf")
    from augpaint_fast.export.command import export_models
    from augpaint_fast.job.calibrate import calibration

    out = tmp_path_factory.mktemp("int8-cache")
    cal = calibration(phantom_data, weights, **CALIBRATION)
    export_models(weights, "onnx", out, batch_sizes=(4,), int8=cal)
    return out, cal


@pytest.fixture(scope="module")
def trained(weights):
    from augpaint_fast.models.checkpoint import load_weights_folder

    ae, _, unet, _ = load_weights_folder(weights)
    return ae, unet


@pytest.mark.slow
def test_int8_export_is_cached_by_weights_and_calibration(int8_cache, trained, weights, tmp_path):
    from augpaint_fast.export.int8 import find_int8, quantize_int8
    from augpaint_fast.export.onnx_export import onnx_path
    from augpaint_fast.export.specs import export_specs

    out, cal = int8_cache
    spec = export_specs(*trained)["unet"]
    (path,) = out.glob("unet-int8-*.onnx")
    assert find_int8(spec, out) == path
    meta = json.loads((out / (path.name + ".json")).read_text())
    assert meta["calibration"] == cal.fingerprint and meta["calibration_calls"] == CALIBRATION["steps"]
    assert cal.fingerprint["data"]["sources"] == 3 and cal.fingerprint["steps"] == 10
    before = path.stat().st_mtime_ns
    same = Calibration(cal.fingerprint, lambda: pytest.fail("a cache hit recorded trajectories"))
    assert quantize_int8(spec, onnx_path(spec, out), out, same) == path and path.stat().st_mtime_ns == before
    other = Calibration(dict(cal.fingerprint, seed=1), lambda: pytest.fail("stop: the key changed"))
    with pytest.raises(pytest.fail.Exception, match="the key changed"):
        quantize_int8(spec, onnx_path(spec, out), out, other)
    # another U-Net's weights do not find it; a corrupted file is not used
    _, unet = random_models("tiny")
    assert find_int8(export_specs(trained[0], unet)["unet"], out) is None
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in (path, out / (path.name + ".json")):
        (copy / f.name).write_bytes(f.read_bytes())
    with (copy / path.name).open("r+b") as fh:
        fh.seek(100)
        fh.write(b"\0\0\0\0")
    assert find_int8(spec, copy) is None


@pytest.mark.slow
def test_int8_unet_within_its_bound_and_autoencoder_stays_fp32(int8_cache, trained):
    ae, unet = trained
    out, _ = int8_cache
    ref = create_engine("torch", ae, unet)
    e = create_engine("openvino", ae, unet, dtype="int8", cache_dir=out, batch_sizes=(4,))
    g = torch.Generator().manual_seed(0)
    z, x = torch.randn(3, 3, 16, 16, generator=g), torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        worst = max(((e.denoiser(z, t) - ref.denoiser(z, t)).abs().max() / ref.denoiser(z, t).abs().max()).item()
                    for t in (torch.tensor(ts) for ts in ([1, 1, 1], [500, 500, 500], [981, 981, 981], [0, 400, 999])))
        print(f"openvino int8 U-Net vs fp32: max rel diff {worst:.3f}")
        assert 1e-3 < worst <= 0.05  # > 1e-3: int8 really ran
        for a, b in ((e.encode(x), ref.encode(x)), (e.decode(z * 0.3), ref.decode(z * 0.3))):
            assert ((a - b).abs().max() / b.abs().max()).item() <= 1e-4


@pytest.mark.slow
def test_int8_caching_graphs_within_the_same_bound(int8_cache, trained):
    """export --int8 also writes the two graphs of feature caching; each is within the U-Net's int8 bound."""
    from augpaint_fast.models.unet import DEFAULT_CACHE_DEPTH

    ae, unet = trained
    out, _ = int8_cache
    assert {p.name.split("-int8-")[0] for p in out.glob("*-int8-*.onnx")} == {"unet", "unet_full", "unet_shallow"}
    e = create_engine("openvino", ae, unet, dtype="int8", cache_dir=out, batch_sizes=(4,), cache_interval=3)
    g = torch.Generator().manual_seed(1)
    z, t = torch.randn(3, 3, 16, 16, generator=g), torch.tensor([0, 400, 999])
    with torch.no_grad():
        eps_ref, feature = unet.forward_with_feature(z, t, depth=DEFAULT_CACHE_DEPTH)
        shallow_ref = unet.forward_shallow(z, t, feature, depth=DEFAULT_CACHE_DEPTH)
        eps, feature_int8 = e._full(z, t, None)
        shallow = e._shallow(z, t, None, feature)
    rel = {name: ((a - b).abs().max() / b.abs().max()).item()
           for name, a, b in (("full", eps, eps_ref), ("feature", feature_int8, feature),
                              ("shallow", shallow, shallow_ref))}
    print(f"openvino int8 caching graphs vs fp32, max rel diff: {rel}")
    # the bound is on eps, what the sampler uses (measured 0.0076 full, 0.0071 shallow); the cached deep feature
    # is an inner activation whose max rel diff is larger (measured 0.025) and is not bounded here
    assert 1e-3 < rel["full"] <= 0.05 and 1e-3 < rel["shallow"] <= 0.05 and rel["feature"] > 1e-3


@pytest.mark.slow
def test_int8_full_sampling_run_against_torch(int8_cache, phantom_data, weights, tmp_path):
    from augpaint_fast.job import generate
    from augpaint_fast.job.quality import run_quality

    out_cache, _ = int8_cache
    outs = {}
    for name, options in (("torch", {}), ("openvino", dict(dtype="int8", cache_dir=str(out_cache)))):
        opts = generate.SampleOptions(n=2, steps=10, seed=3, batch_size=4, engine=name, engine_options=options)
        outs[name] = tmp_path / name
        generate.run_sampling(phantom_data, weights, outs[name], opts, progress=False)
    recs = {n: [json.loads(line) for line in (o / "manifest.jsonl").read_text().splitlines()] for n, o in outs.items()}
    assert len(recs["torch"]) == len(recs["openvino"]) == 6
    for a, b in zip(recs["torch"], recs["openvino"]):
        assert a["name"] == b["name"] and b["engine_options"]["dtype"] == "int8"
        assert (outs["torch"] / a["label"]).read_bytes() == (outs["openvino"] / b["label"]).read_bytes()
    q, q_ref = run_quality(outs["openvino"], reference=outs["torch"]), run_quality(outs["torch"])
    print(f"openvino int8 vs torch fp32: {q}; torch: {q_ref}")
    assert 0 < q.mad_to_reference_grey <= 3.0
    assert abs(q.known_psnr_db - q_ref.known_psnr_db) <= 0.5
