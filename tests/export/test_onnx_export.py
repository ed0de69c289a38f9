"""ONNX export: specs, checker, parity with PyTorch (tiny and small), caching and corruption handling."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import onnx  # noqa: E402

from augpaint_fast.export import cache  # noqa: E402
from augpaint_fast.export.onnx_export import export_all, export_onnx  # noqa: E402
from augpaint_fast.export.specs import export_specs  # noqa: E402
from tests.engines._models import random_models, save_weights  # noqa: E402

# Stated tolerances (float32 ONNX Runtime vs float32 PyTorch, same weights and inputs): max |diff| relative to
# max |reference|.
RTOL = {"encoder": 1e-4, "unet": 1e-4, "decoder": 1e-4}


def _ort_run(path, spec, inputs):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(sess.run(None, {n: x.numpy() for n, x in zip(spec.input_names, inputs)})[0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    ae, unet = random_models("tiny")
    out = tmp_path_factory.mktemp("onnx")
    return ae, unet, out, export_all(ae, unet, out)


def test_specs_declare_names_axes_profile():
    ae, unet = random_models("tiny")
    specs = export_specs(ae, unet, (1, 4, 8, 16))
    assert set(specs) == {"encoder", "unet", "decoder"}
    assert specs["unet"].input_names == ("z", "t") and specs["unet"].output_names == ("eps",)
    assert specs["unet"].profile == (1, 8, 16)
    for spec in specs.values():
        assert all(axes == {0: "batch"} for axes in spec.dynamic_axes.values())
        assert [x.shape[0] for x in spec.sample_inputs(3)] == [3] * len(spec.input_names)
    z_min, z_opt, z_max = specs["unet"].profile_shapes("z")
    assert z_min[0] == 1 and z_max[0] == 16 and z_min[1:] == (3, 16, 16)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["encoder", "unet", "decoder"])
def test_tiny_export_checks_and_matches_torch(tiny, name):
    ae, unet, _, paths = tiny
    onnx.checker.check_model(onnx.load(str(paths[name])), full_check=True)
    spec = export_specs(ae, unet)[name]
    g = torch.Generator().manual_seed(1)
    for batch in (1, 5):  # dynamic batch axis: sizes other than the export's sample batch
        inputs = spec.sample_inputs(batch, generator=g)
        if name == "decoder":
            inputs = (inputs[0] * 0.05,)  # latents at the codebook's scale
        with torch.no_grad():
            ref = spec.module(*inputs)
        got = _ort_run(paths[name], spec, inputs)
        assert got.shape == ref.shape
        assert (got - ref).abs().max() <= RTOL[name] * ref.abs().max(), name


@pytest.mark.slow
def test_decoder_export_includes_quantisation(tiny):
    ae, unet, _, paths = tiny
    model = onnx.load(str(paths["decoder"]))
    assert "ArgMin" in {node.op_type for node in model.graph.node}


@pytest.mark.slow
def test_conditional_unet_export(tmp_path):
    ae, unet = random_models("tiny", cond_channels=2)
    spec = export_specs(ae, unet)["unet"]
    assert spec.input_names == ("z", "t", "cond")
    path = export_onnx(spec, tmp_path)
    inputs = spec.sample_inputs(3)
    with torch.no_grad():
        ref = spec.module(*inputs)
    got = _ort_run(path, spec, inputs)
    assert (got - ref).abs().max() <= 1e-4 * ref.abs().max()


@pytest.mark.slow
def test_small_unet_parity(tmp_path):
    ae, unet = random_models("small")
    spec = export_specs(ae, unet)["unet"]
    path = export_onnx(spec, tmp_path)
    inputs = spec.sample_inputs(2)
    with torch.no_grad():
        ref = spec.module(*inputs)
    got = _ort_run(path, spec, inputs)
    assert (got - ref).abs().max() <= RTOL["unet"] * ref.abs().max()


@pytest.mark.slow
def test_cache_hit_rerun_and_key_changes(tiny, tmp_path):
    ae, unet, out, paths = tiny
    stamps = {n: p.stat().st_mtime_ns for n, p in paths.items()}
    again = export_all(ae, unet, out)
    assert again == paths and {n: p.stat().st_mtime_ns for n, p in again.items()} == stamps
    from augpaint_fast.export.onnx_export import onnx_key

    ae2, unet2 = random_models("tiny", seed=1)  # other weights -> other key -> other file name
    assert onnx_key(export_specs(ae2, unet2)["unet"]) != onnx_key(export_specs(ae, unet)["unet"])


@pytest.mark.slow
def test_corrupt_or_mismatched_export_is_rebuilt(tmp_path):
    ae, unet = random_models("tiny")
    spec = export_specs(ae, unet)["encoder"]
    path = export_onnx(spec, tmp_path)
    good = path.read_bytes()
    key = cache.read_meta(path)["key"]
    path.write_bytes(good[: len(good) // 2])  # truncated
    assert cache.lookup(path, key)[0] is False
    assert "hash mismatch" in cache.lookup(path, key)[1]
    assert export_onnx(spec, tmp_path) == path and path.read_bytes() == good
    cache.sidecar(path).write_text("{not json")
    assert cache.lookup(path, key)[0] is False
    export_onnx(spec, tmp_path)
    assert cache.lookup(path, key) == (True, "")
    assert cache.lookup(path, "other-key")[0] is False


@pytest.mark.slow
def test_deep_cache_specs_export_and_match_torch(tmp_path):
    """The feature-caching graphs: unet_full gives (eps, feature) as UNet.forward_with_feature, unet_shallow
    gives forward_shallow's eps (ONNX Runtime, 1e-4 of the scale)."""
    from augpaint_fast.export.specs import deep_cache_specs

    _, unet = random_models("tiny")
    specs = deep_cache_specs(unet, (1, 4))
    assert specs["unet_full"].output_names == ("eps", "feature")
    assert specs["unet_shallow"].input_names == ("z", "t", "feature")
    assert specs["unet_shallow"].input_shapes["feature"][1] == unet.feature_shape(1, 16, 16)
    z, t = specs["unet_full"].sample_inputs(3)
    with torch.no_grad():
        eps, feature = unet.forward_with_feature(z, t, depth=1)
        shallow = unet.forward_shallow(z, t, feature * 0.9, depth=1)
    full_path = export_onnx(specs["unet_full"], tmp_path)
    sess = ort.InferenceSession(str(full_path), providers=["CPUExecutionProvider"])
    got_eps, got_feature = sess.run(None, {"z": z.numpy(), "t": t.numpy()})
    assert (torch.from_numpy(got_eps) - eps).abs().max() <= 1e-4 * eps.abs().max()
    assert (torch.from_numpy(got_feature) - feature).abs().max() <= 1e-4 * feature.abs().max()
    got = _ort_run(export_onnx(specs["unet_shallow"], tmp_path), specs["unet_shallow"], (z, t, feature * 0.9))
    assert (got - shallow).abs().max() <= 1e-4 * shallow.abs().max()
    assert export_onnx(specs["unet_full"], tmp_path) == full_path  # cached


@pytest.mark.slow
def test_export_command(tiny, tmp_path, capsys):
    from augpaint_fast.cli.main import main

    ae, unet, out, paths = tiny
    weights = save_weights(tmp_path / "w", ae, unet)  # same weights, saved and reloaded: same cache keys
    assert main(["export", "--weights", str(weights), "--format", "onnx", "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("cached") == 3
    assert sorted(out.glob("*.onnx")) == sorted(paths.values())
    from augpaint_fast.engines.trt_engine import trt_missing

    if trt_missing():  # the library names its parameter, the command line its flag
        assert main(["export", "--weights", str(weights), "--format", "trt", "--out", str(out)]) == 2
        assert capsys.readouterr().err.startswith("augpaint-fast: error: --format trt is unavailable")
