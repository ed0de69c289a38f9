"""import-weights --from diffusers: random LDMPipelines built here, saved with save_pretrained, imported.

Nothing is downloaded: the models are random diffusers modules with the block structure of the project's
``tiny`` preset (and, shrunk in space only, the ``paper`` preset's hyper-parameters).
"""
import json

import pytest
import torch

from augpaint_fast.models.checkpoint import load_weights_folder
from augpaint_fast.cli.main import main
from augpaint_fast.models.config import get_preset

diffusers = pytest.importorskip("diffusers")


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter random (diffusers zero-initialises nothing we rely on, but be sure), outputs O(1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            elif "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 2 and "embedding" in name and "time" not in name:  # codebook
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)


def _diffusers_models(preset: str, latent_size: int | None = None):
    """A random UNet2DModel + VQModel with ``preset``'s hyper-parameters (latent side ``latent_size``)."""
    pre = get_preset(preset)
    u, a = pre.unet, pre.autoencoder
    size = latent_size or u.latent_size
    widths = tuple(u.model_channels * m for m in u.channel_mult)
    attn = [res in u.attention_resolutions for res in u.level_resolutions]
    unet = diffusers.UNet2DModel(
        sample_size=size, in_channels=u.in_channels, out_channels=u.out_channels, block_out_channels=widths,
        layers_per_block=u.num_res_blocks, attention_head_dim=u.num_head_channels, norm_num_groups=u.num_groups,
        down_block_types=tuple("AttnDownBlock2D" if x else "DownBlock2D" for x in attn),
        up_block_types=tuple("AttnUpBlock2D" if x else "UpBlock2D" for x in reversed(attn)))
    vq = diffusers.VQModel(
        in_channels=a.in_channels, out_channels=a.out_channels, block_out_channels=tuple(a.ch * m for m in a.ch_mult),
        down_block_types=("DownEncoderBlock2D",) * len(a.ch_mult), up_block_types=("UpDecoderBlock2D",) * len(a.ch_mult),
        layers_per_block=a.num_res_blocks, latent_channels=a.z_channels, num_vq_embeddings=a.n_embed,
        norm_num_groups=a.num_groups, scaling_factor=0.5)
    _randomise(unet, 1)
    _randomise(vq, 2)
    return unet.eval(), vq.eval()


def _save_pipeline(folder, unet, vq, **scheduler):
    sched = diffusers.DDIMScheduler(beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear",
                                    clip_sample=False, **scheduler)
    diffusers.LDMPipeline(vqvae=vq, unet=unet, scheduler=sched).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    unet, vq = _diffusers_models("tiny")
    return _save_pipeline(tmp_path_factory.mktemp("ldm") / "pipe", unet, vq), unet, vq


@pytest.fixture(scope="module")
def tiny_imported(tiny_pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("imported") / "w"
    assert main(["import-weights", "--from", "diffusers", str(tiny_pipeline[0]), "--out", str(out)]) == 0
    return out


def _check_eps(weights, unet, latent_size, channels=3):
    _, _, ours, cfg = load_weights_folder(weights)
    z = torch.randn(2, channels, latent_size, latent_size, generator=torch.Generator().manual_seed(0))
    for t in (0, 500, 999):
        tt = torch.full((2,), t, dtype=torch.int64)
        with torch.no_grad():
            want = unet(z, tt).sample
            got = ours(z, tt)
        assert want.abs().max() > 0.1  # a real signal, not two zero outputs
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    return cfg


@pytest.mark.slow
def test_tiny_pipeline_imports_and_matches(tiny_pipeline, tiny_imported, capsys):
    _, unet, vq = tiny_pipeline
    cfg = _check_eps(tiny_imported, unet, 16)
    tiny = get_preset("tiny").unet
    assert (cfg.model_channels, cfg.channel_mult, cfg.attention_resolutions) == \
        (tiny.model_channels, tiny.channel_mult, tiny.attention_resolutions)
    assert cfg.latent_scale == (2.0,) * 3  # 1 / scaling_factor: the pipeline denoises h * scaling_factor
    ae, _, _, _ = load_weights_folder(tiny_imported)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        h_want = vq.encode(x).latents
        torch.testing.assert_close(ae.encode(x), h_want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ae.decode(h_want), vq.decode(h_want).sample, atol=1e-5, rtol=1e-5)
    meta = json.loads((tiny_imported / "unet" / "config.json").read_text())
    assert meta["imported"]["path"] == "converted" and meta["imported"]["tensors"]["unconverted"] == 0
    assert meta["imported"]["tensors"]["unet"] == len(unet.state_dict())
    assert main(["info", "--weights", str(tiny_imported)]) == 0
    assert "imported from diffusers" in capsys.readouterr().out


@pytest.mark.slow
def test_paper_hyperparameters_import_with_zero_unconverted(tmp_path):
    """The paper preset's U-Net (224 channels, 1-2-3-4, attention at 32/16/8, 32-channel heads; 274 M
    parameters) and VQ model, at their full width and depth. Only the comparison runs at an 8x8 latent
    (attention then sits at 4/2/1) to keep the test to seconds; the tensors are the full model's."""
    unet, vq = _diffusers_models("paper", latent_size=8)
    assert sum(p.numel() for p in unet.parameters()) == pytest.approx(274.1e6, rel=0.01)
    pipe = _save_pipeline(tmp_path / "pipe", unet, vq)
    out = tmp_path / "w"
    assert main(["import-weights", "--from", "diffusers", str(pipe), "--out", str(out)]) == 0
    _check_eps(out, unet, 8)
    meta = json.loads((out / "unet" / "config.json").read_text())
    assert meta["imported"]["tensors"]["unconverted"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_sampling_runs_with_imported_weights(engine, tiny_imported, phantom_data, tmp_path):
    pytest.importorskip("onnxruntime") if engine == "onnx" else None
    out = tmp_path / "out"
    argv = ["sample", "--data", str(phantom_data), "--weights", str(tiny_imported), "--out", str(out),
            "--steps", "2", "--n", "1", "--engine", engine]
    if engine == "onnx":
        argv += ["--engine-cache", str(tmp_path / "cache")]
    assert main(argv) == 0
    assert len(list((out / "images").iterdir())) == 3


@pytest.mark.parametrize("change, fragment", [
    ({"prediction_type": "v_prediction"}, "prediction_type=v_prediction"),
    ({"clip_sample": True, "thresholding": True}, "clip_sample=true, thresholding=true"),
    ({"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02}, "beta_schedule=linear 0.0001..0.02"),
])
def test_unsupported_scheduler_is_one_line(change, fragment, tiny_pipeline, tmp_path, capsys):
    pipe = tiny_pipeline[0]
    cfg_path = tmp_path / "scheduler_config.json"
    import shutil

    copy = tmp_path / "pipe"
    shutil.copytree(pipe, copy)
    cfg_path = copy / "scheduler" / "scheduler_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(change)
    cfg_path.write_text(json.dumps(cfg))
    assert main(["import-weights", "--from", "diffusers", str(copy), "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("augpaint-fast: error: scheduler: unsupported") and fragment in err[0]
    assert not (tmp_path / "w").exists()


def test_wrong_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["import-weights", "--from", "diffusers", str(tmp_path / "empty"), "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"augpaint-fast: error: {tmp_path / 'empty'} is not a diffusers pipeline folder "
                   f"(no model_index.json)"]
