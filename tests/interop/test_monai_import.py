"""import-weights --from monai: random MONAI generative networks built here, saved as state dicts + networks.json,
imported (path "wrapped"), compared with the originals and sampled with."""
import json

import pytest
import torch

from augpaint_fast.cli.main import main
from augpaint_fast.models.checkpoint import load_weights_folder

nets = pytest.importorskip("monai.networks.nets")
if not hasattr(nets, "DiffusionModelUNet"):
    pytest.skip("MONAI < 1.4 has no generative networks", allow_module_level=True)

SCHEDULER = {"class": "DDIMScheduler", "args": {"schedule": "scaled_linear_beta", "beta_start": 0.0015,
                                                "beta_end": 0.0195, "clip_sample": False}}
UNET = {"spatial_dims": 2, "in_channels": 3, "out_channels": 3, "num_res_blocks": 1, "channels": [16, 32],
        "attention_levels": [False, True], "norm_num_groups": 8, "num_head_channels": 8}
AUTOENCODERS = {
    "AutoencoderKL": {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "num_res_blocks": 1,
                      "channels": [8, 16, 16], "attention_levels": [False, False, False], "latent_channels": 3,
                      "norm_num_groups": 8, "with_encoder_nonlocal_attn": False, "with_decoder_nonlocal_attn": False},
    "VQVAE": {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, "channels": [8, 16], "num_res_layers": 1,
              "num_res_channels": [8, 16], "downsample_parameters": [[2, 4, 1, 1], [2, 4, 1, 1]],
              "upsample_parameters": [[2, 4, 1, 1, 0], [2, 4, 1, 1, 0]], "num_embeddings": 16, "embedding_dim": 3},
}


def _randomise(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():  # MONAI zero-initialises output convolutions: make every output non-trivial
            p.copy_(torch.randn(p.shape, generator=g) / max(p[0].numel(), 1) ** 0.5 if p.dim() > 1 else
                    0.05 * torch.randn(p.shape, generator=g))


def _monai_folder(folder, ae_class, scheduler=SCHEDULER):
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    unet, ae = nets.DiffusionModelUNet(**UNET).eval(), getattr(nets, ae_class)(**AUTOENCODERS[ae_class]).eval()
    _randomise(unet, 1)
    _randomise(ae, 2)
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(folder / "unet.safetensors"))
    torch.save(ae.state_dict(), folder / "autoencoder.pt")
    (folder / "networks.json").write_text(json.dumps({
        "image_size": 64, "scale_factor": 0.5, "scheduler": scheduler,
        "unet": {"class": "DiffusionModelUNet", "args": UNET, "weights": "unet.safetensors"},
        "autoencoder": {"class": ae_class, "args": AUTOENCODERS[ae_class], "weights": "autoencoder.pt"}}))
    return unet, ae


@pytest.fixture(scope="module", params=sorted(AUTOENCODERS))
def imported(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    unet, ae = _monai_folder(root / "monai", request.param)
    assert main(["import-weights", "--from", "monai", str(root / "monai"), "--out", str(root / "w")]) == 0
    return root / "w", unet, ae


def test_wrapped_networks_match_the_originals(imported, capsys):
    weights, unet, ae = imported
    ours_ae, ae_cfg, ours, cfg = load_weights_folder(weights)
    assert (cfg.latent_size, cfg.in_channels, ae_cfg.resolution) == (16, 3, 64)
    assert cfg.latent_scale == (2.0,) * 3  # 1 / scale_factor
    z = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for t in (0, 500, 999):
        tt = torch.full((2,), t, dtype=torch.int64)
        with torch.no_grad():
            want, got = unet(z, tt), ours(z, tt)
        assert want.abs().max() > 0.1
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    x = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        h = ours_ae.encode(x.expand(-1, 3, -1, -1))
        torch.testing.assert_close(h, ae.encode_stage_2_inputs(x) if isinstance(ae, nets.VQVAE) else ae.encode(x)[0])
        torch.testing.assert_close(ours_ae.decode(h)[:, :1], ae.decode_stage_2_outputs(h))
    meta = json.loads((weights / "unet" / "config.json").read_text())
    assert meta["imported"]["path"] == "wrapped" and meta["foreign"]["class"] == "DiffusionModelUNet"
    assert main(["info", "--weights", str(weights)]) == 0
    assert "path: wrapped (DiffusionModelUNet + " in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_sampling_runs_with_wrapped_monai_networks(engine, imported, phantom_data, tmp_path):
    if engine == "onnx":
        pytest.importorskip("onnxruntime")
    out = tmp_path / "out"
    argv = ["sample", "--data", str(phantom_data), "--weights", str(imported[0]), "--out", str(out),
            "--steps", "2", "--n", "1", "--engine", engine]
    if engine == "onnx":
        argv += ["--engine-cache", str(tmp_path / "cache")]
    assert main(argv) == 0
    assert len(list((out / "images").iterdir())) == 3


class NotATensor:  # pickled into a .pt file: weights_only must refuse to rebuild it
    pass


@pytest.mark.parametrize("change, fragment", [
    (lambda d: json.dumps({**json.loads((d / "networks.json").read_text()),
                           "scheduler": {"class": "DDIMScheduler", "args": {"schedule": "scaled_linear_beta",
                                                                            "beta_start": 0.0015,
                                                                            "beta_end": 0.0195}}}),
     "scheduler: unsupported clip_sample=true"),
    (lambda d: json.dumps({**json.loads((d / "networks.json").read_text()),
                           "scheduler": {"class": "DDPMScheduler", "args": {"prediction_type": "v_prediction",
                                                                            "clip_sample": False}}}),
     "beta_schedule=linear 0.0001..0.02, prediction_type=v_prediction"),
    ("pickle", "cannot read"),
])
def test_what_cannot_be_honoured_is_one_line(change, fragment, tmp_path, capsys):
    folder = tmp_path / "monai"
    _monai_folder(folder, "AutoencoderKL")
    if change == "pickle":
        torch.save({"x": NotATensor()}, folder / "autoencoder.pt")
    else:
        (folder / "networks.json").write_text(change(folder))
    assert main(["import-weights", "--from", "monai", str(folder), "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    assert not (tmp_path / "w").exists()


def _bundle(folder, **network_changes):
    """A MONAI bundle folder as the model zoo lays it out: configs/inference.json with @references and $
    expressions elsewhere, models/model.pt and models/model_autoencoder.pt."""
    unet, ae = _monai_folder(folder / "tmp", "AutoencoderKL")
    (folder / "models").mkdir()
    torch.save(unet.state_dict(), folder / "models" / "model.pt")
    torch.save(ae.state_dict(), folder / "models" / "model_autoencoder.pt")
    (folder / "configs").mkdir()
    (folder / "configs" / "inference.json").write_text(json.dumps({
        "imports": ["$import torch"], "device": "$torch.device('cpu')", "spatial_dims": 2, "latent_channels": 3,
        "latent_shape": ["@latent_channels", 16, 16], "scale_factor": 0.5,
        "autoencoder_def": {"_target_": "monai.networks.nets.AutoencoderKL",
                            **AUTOENCODERS["AutoencoderKL"], "spatial_dims": "@spatial_dims"},
        "network_def": {"_target_": "monai.networks.nets.DiffusionModelUNet", **UNET,
                        "in_channels": "@latent_channels", **network_changes},
        "noise_scheduler": {"_target_": "monai.networks.schedulers.DDIMScheduler", **SCHEDULER["args"]},
        "load_autoencoder": "$@autoencoder_def.load_state_dict(torch.load('models/model_autoencoder.pt'))"}))
    return unet


def test_a_bundle_folder_imports_with_its_references_resolved(tmp_path):
    unet = _bundle(tmp_path / "bundle")
    assert main(["import-weights", "--from", "monai", str(tmp_path / "bundle"), "--out", str(tmp_path / "w")]) == 0
    _, ae_cfg, ours, cfg = load_weights_folder(tmp_path / "w")
    assert (ae_cfg.resolution, cfg.latent_size, cfg.latent_scale) == (64, 16, (2.0,) * 3)
    z, t = torch.randn(1, 3, 16, 16), torch.tensor([700])
    with torch.no_grad():
        torch.testing.assert_close(ours(z, t), unet(z, t), atol=1e-5, rtol=1e-5)


def test_a_bundle_value_computed_by_an_expression_is_refused(tmp_path, capsys):
    _bundle(tmp_path / "bundle", num_res_blocks="$2 - 1")
    assert main(["import-weights", "--from", "monai", str(tmp_path / "bundle"), "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "network_def.num_res_blocks is computed by the bundle expression '$2 - 1'" in err[0]


@pytest.mark.slow
def test_the_feature_cache_is_refused_for_a_wrapped_unet(imported, phantom_data, tmp_path, capsys):
    argv = ["sample", "--data", str(phantom_data), "--weights", str(imported[0]), "--out", str(tmp_path / "out"),
            "--steps", "4", "--n", "1", "--cache-interval", "2"]
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # progress bars besides
    assert errors == ["augpaint-fast: error: an imported MONAI U-Net has no feature cache: sample with "
                      "--cache-interval 1"]
