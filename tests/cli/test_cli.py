"""The command line against real files: every bad input is one error line, exit 2, nothing half-written."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from augpaint_fast.cli.main import main


def _sample(data, out, weights, *extra):
    return main(["sample", "--data", str(data), "--weights", str(weights), "--out", str(out), "--steps", "2",
                 "--n", "1", *extra])


def _one_error_line(capsys, *needles):
    """stderr ends with exactly one error line (progress bars may stand before it) and holds no traceback."""
    lines = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()
    errors = [line for line in lines if "error" in line.lower() or "Traceback" in line]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    err = errors[0]
    assert err.startswith("augpaint-fast: error: ")
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def data(phantom_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(phantom_data, root)
    return root


def test_sample_writes_outputs(data, weights, tmp_path, capsys):
    assert _sample(data, tmp_path / "out", weights) == 0
    assert "3 pair(s) written" in capsys.readouterr().out
    assert len((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()) == 3


def test_missing_label(data, weights, tmp_path, capsys):
    (data / "labels" / "phantom_0001.png").unlink()
    assert _sample(data, tmp_path / "out", weights) == 2
    _one_error_line(capsys, "phantom_0001", "no label")
    assert not (tmp_path / "out").exists()


def test_size_mismatch(data, weights, tmp_path, capsys):
    Image.fromarray(np.zeros((60, 64), np.uint8)).save(data / "labels" / "phantom_0002.png")
    assert _sample(data, tmp_path / "out", weights) == 2
    _one_error_line(capsys, "phantom_0002", "60x64")
    assert not (tmp_path / "out").exists()


def test_truncated_image(data, weights, tmp_path, capsys):
    path = data / "images" / "phantom_0000.png"
    path.write_bytes(path.read_bytes()[:200])
    assert _sample(data, tmp_path / "out", weights) == 2
    _one_error_line(capsys, "phantom_0000")
    assert not (tmp_path / "out").exists()


def test_jpeg_label_is_refused_and_0_255_label_is_read_as_binary(data, weights, tmp_path, capsys):
    label = (np.asarray(Image.open(data / "labels" / "phantom_0000.png")) > 0).astype(np.uint8) * 255
    (data / "labels" / "phantom_0000.png").unlink()
    Image.fromarray(label).save(data / "labels" / "phantom_0000.png")
    assert _sample(data, tmp_path / "ok", weights) == 0
    capsys.readouterr()
    rec = json.loads((tmp_path / "ok" / "manifest.jsonl").read_text().splitlines()[0])
    assert set(np.unique(np.asarray(Image.open(tmp_path / "ok" / rec["label"])))) == {0, 1}

    (data / "labels" / "phantom_0000.png").unlink()
    noisy = np.clip(label.astype(float) * 0.8 + np.random.default_rng(0).normal(0, 30, label.shape), 0, 255)
    Image.fromarray(noisy.astype(np.uint8)).save(data / "labels" / "phantom_0000.jpg", quality=70)
    assert _sample(data, tmp_path / "bad", weights) == 2
    _one_error_line(capsys, "phantom_0000.jpg", "distinct values", "--max-classes")
    assert not (tmp_path / "bad").exists()


def test_unwritable_output(data, weights, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert _sample(data, blocker / "out", weights) == 2
    _one_error_line(capsys, str(blocker))


def test_weights_folder_of_the_wrong_kind(data, weights, tmp_path, capsys):
    wrong = tmp_path / "wrong"
    shutil.copytree(weights / "unet", wrong / "autoencoder")
    shutil.copytree(weights / "unet", wrong / "unet")
    assert _sample(data, tmp_path / "out", wrong) == 2
    _one_error_line(capsys, "autoencoder")
    assert _sample(data, tmp_path / "out", tmp_path / "nowhere") == 2
    _one_error_line(capsys, "nowhere")


def test_corrupt_weights_file(data, weights, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(weights, bad)
    f = bad / "unet" / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    assert _sample(data, tmp_path / "out", bad) == 2
    _one_error_line(capsys, "model.safetensors")


def test_unavailable_engine_names_what_is_missing(data, weights, tmp_path, capsys):
    assert _sample(data, tmp_path / "out", weights, "--engine", "trt") == 2
    _one_error_line(capsys, "trt", "available here: torch")
    assert _sample(data, tmp_path / "out", weights, "--engine", "cuda-magic") == 2
    _one_error_line(capsys, "unknown engine")


def test_every_engine_option_is_on_the_command_line(capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    out = capsys.readouterr().out
    for flag in ("--engine", "--device", "--dtype", "--autoencoder-dtype", "--decoder-dtype", "--cuda-graphs",
                 "--compile", "--channels-last", "--engine-batch-sizes", "--threads", "--engine-cache"):
        assert flag in out, flag


def test_engine_options_reach_the_engine_or_are_refused_in_one_line(data, weights, tmp_path, capsys):
    assert _sample(data, tmp_path / "a", weights, "--threads", "1") == 2
    _one_error_line(capsys, "--engine torch does not take option(s) threads")
    assert _sample(data, tmp_path / "b", weights, "--cuda-graphs") == 2
    _one_error_line(capsys, "CUDA graphs need a CUDA device")
    if not __import__("torch").cuda.is_available():
        assert _sample(data, tmp_path / "c", weights, "--device", "cuda") == 2
        _one_error_line(capsys, "--device cuda: no CUDA GPU is visible")
    assert _sample(data, tmp_path / "d", weights, "--device", "gpu7") == 2
    _one_error_line(capsys, "is not a device")
    assert _sample(data, tmp_path / "e", weights, "--engine-batch-sizes", "2", "4") == 2
    _one_error_line(capsys, "batch_sizes")  # the CPU torch engine has no static shapes to build


def test_weights_with_a_nan_are_refused_naming_file_and_tensor(data, weights, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "nan"
    shutil.copytree(weights, bad)
    f = bad / "unet" / "model.safetensors"
    tensors = load_file(str(f))
    tensors["conv_in.weight"][0, 0, 0, 0] = float("nan")
    save_file(tensors, str(f))
    assert _sample(data, tmp_path / "out", bad) == 2
    _one_error_line(capsys, "unet/model.safetensors", "conv_in.weight", "NaN")
    assert not (tmp_path / "out").exists()


def test_non_finite_latents_stop_the_run_with_one_line(data, weights, tmp_path, capsys, monkeypatch):
    """Weights can be finite and still produce NaN (an overflow); the run stops at the first such batch."""
    import torch

    from augpaint_fast.engines import TorchEngine

    monkeypatch.setattr(TorchEngine, "denoiser", lambda self, z, t, cond=None: torch.full_like(z, float("inf")))
    assert _sample(data, tmp_path / "out", weights) == 2
    _one_error_line(capsys, "NaN/Inf latents", "U-Net")
    assert not list((tmp_path / "out" / "images").glob("*.png"))


def test_make_phantom_and_info(tmp_path, capsys):
    assert main(["make-phantom", "--out", str(tmp_path / "ph"), "--n", "2", "--unlabelled", "1"]) == 0
    assert len(list((tmp_path / "ph" / "images").glob("*.png"))) == 2
    assert len(list((tmp_path / "ph" / "unlabelled").glob("*.png"))) == 1
    capsys.readouterr()
    assert main(["info", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "U-Net" in out and "fused step kernel path" in out and "engine torch: available" in out


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--n", "1"]) == 0
    out = capsys.readouterr().out
    assert "6 pair(s) written" in out
    assert (tmp_path / "demo" / "samples" / "preview.png").exists()


@pytest.mark.parametrize("argv, needle", [
    (["sample", "--data", "d", "--out", "o", "--mask", "blob"], "argument --mask: invalid choice: 'blob'"),
    (["sample", "--data", "d", "--out", "o", "--steps", "many"], "argument --steps: invalid int value: 'many'"),
    (["serve", "--flip", "sideways"], "argument --flip: invalid choice: 'sideways'"),
    (["pipeline", "--data", "d", "--test", "t"], "the following arguments are required: --out"),
    (["no-such-command"], "argument command: invalid choice: 'no-such-command'"),
])
def test_argument_errors_are_one_line_without_usage(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and err.startswith(f"augpaint-fast: error: {needle}"), err
    assert "usage:" not in err


def test_help_keeps_its_usage_block(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sample", "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("usage: augpaint-fast sample")


def test_library_errors_name_parameters_and_the_cli_names_flags(data, weights, tmp_path, capsys):
    from augpaint_fast.embed.api import from_pretrained
    from augpaint_fast.errors import AugPaintError

    with pytest.raises(AugPaintError) as exc:
        from_pretrained(steps=0)
    assert str(exc.value).startswith("steps must be between 1 and") and "--" not in str(exc.value)
    assert exc.value.param == "steps"
    with pytest.raises(AugPaintError, match=r"^unknown mask_mode 'blob'"):
        from_pretrained(mask_mode="blob")
    assert _sample(data, tmp_path / "o", weights, "--steps", "0") == 2  # the same check, under its flag
    _one_error_line(capsys, "--steps must be between 1 and")
    assert _sample(data, tmp_path / "o", weights, "--n", "0") == 2
    _one_error_line(capsys, "--n must be >= 1, got 0")


def test_error_line_maps_parameters_to_flags():
    import pickle

    from augpaint_fast.cli.errors import error_line
    from augpaint_fast.errors import AugPaintError

    assert error_line(AugPaintError("unknown mask_mode 'x'; n is fine", param="mask_mode")) == \
        "unknown --mask 'x'; n is fine"
    assert error_line(AugPaintError("cache_interval must be >= 1", param="cache_interval")) == \
        "--cache-interval must be >= 1"
    assert error_line(AugPaintError("--out o is a file", param="--out")) == "--out o is a file"
    assert error_line(AugPaintError("the n-th image, n must be >= 1", param="n")) == "the n-th image, --n must be >= 1"
    copy = pickle.loads(pickle.dumps(AugPaintError("eta must be in [0, 1]", param="eta")))  # across Ray workers
    assert copy.param == "eta" and str(copy) == "eta must be in [0, 1]"
