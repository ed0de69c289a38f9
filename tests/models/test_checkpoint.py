"""Checkpoint folders: bit-exact round trip, validation errors as one-line AugPaintErrors, folder hashing."""
import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from augpaint_fast.models.checkpoint import load_model, load_weights_folder, save_model, weights_sha256
from augpaint_fast.models.config import AutoencoderConfig, UNetConfig
from augpaint_fast.errors import AugPaintError
from augpaint_fast.models import UNet, VQAutoencoder

AE = AutoencoderConfig(resolution=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, z_channels=4, embed_dim=3,
                       n_embed=16, num_groups=4)
UN = UNetConfig(latent_size=8, model_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                attention_resolutions=(4,), num_head_channels=8, num_groups=4,
                latent_shift=(0.5, -0.25, 0.0), latent_scale=(2.0, 1.0, 0.5))


def _error(fn, *args):
    with pytest.raises(AugPaintError) as info:
        fn(*args)
    message = str(info.value)
    assert "\n" not in message and message
    return message


@pytest.fixture()
def weights(tmp_path):
    torch.manual_seed(0)
    root = tmp_path / "weights"
    save_model(VQAutoencoder(AE), root / "autoencoder", "autoencoder", extra={"training": {"steps": 3}})
    save_model(UNet(UN), root / "unet", "unet")
    return root


def test_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(1)
    model = UNet(UN)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    save_model(model, tmp_path / "unet", "unet", extra={"note": "x"})
    loaded, cfg = load_model(tmp_path / "unet", "unet")
    assert cfg == UN and isinstance(loaded, UNet) and not loaded.training
    original, restored = model.state_dict(), loaded.state_dict()
    assert list(original) == list(restored)
    for name in original:
        assert restored[name].dtype == torch.float32 and restored[name].device.type == "cpu"
        assert torch.equal(original[name], restored[name]), name
    assert all(p.requires_grad for p in loaded.parameters())
    meta = json.loads((tmp_path / "unet" / "config.json").read_text())
    assert meta["kind"] == "unet" and meta["format_version"] == 1 and meta["note"] == "x"
    assert sorted(p.name for p in (tmp_path / "unet").iterdir()) == ["config.json", "model.safetensors"]


def test_save_rejects_reserved_extra_and_wrong_model(tmp_path):
    _error(save_model, UNet(UN), tmp_path / "a", "unet", {"kind": "x"})
    _error(save_model, UNet(UN), tmp_path / "b", "autoencoder")
    assert "unknown model kind" in _error(save_model, UNet(UN), tmp_path / "c", "vae")


def test_load_weights_folder(weights):
    autoencoder, ae_cfg, unet, unet_cfg = load_weights_folder(weights)
    assert ae_cfg == AE and unet_cfg == UN
    assert isinstance(autoencoder, VQAutoencoder) and isinstance(unet, UNet)


def test_wrong_kind(weights):
    message = _error(load_model, weights / "unet", "autoencoder")
    assert message == f"{weights / 'unet'} holds a 'unet' checkpoint, expected 'autoencoder'"


def test_missing_folder_and_config(weights, tmp_path):
    assert "does not exist" in _error(load_model, tmp_path / "nowhere", "unet")
    (weights / "unet" / "config.json").unlink()
    assert "config.json is missing" in _error(load_model, weights / "unet", "unet")


def test_corrupt_config_json(weights):
    (weights / "unet" / "config.json").write_text('{"kind": "unet",\n "config": {')
    assert "not valid JSON" in _error(load_model, weights / "unet", "unet")


def test_unknown_config_key(weights):
    path = weights / "unet" / "config.json"
    meta = json.loads(path.read_text())
    meta["config"]["colour"] = "red"
    path.write_text(json.dumps(meta))
    assert "unknown key(s) colour" in _error(load_model, weights / "unet", "unet")


def test_unsupported_format_version(weights):
    path = weights / "unet" / "config.json"
    meta = json.loads(path.read_text())
    meta["format_version"] = 2
    path.write_text(json.dumps(meta))
    assert "format_version 2" in _error(load_model, weights / "unet", "unet")


def test_truncated_safetensors(weights):
    path = weights / "unet" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    assert "not a readable safetensors file" in _error(load_model, weights / "unet", "unet")


def test_shape_mismatch_names_first_tensor(weights):
    save_model(UNet(dataclasses.replace(UN, model_channels=16, num_head_channels=16)),
               weights / "other", "unet")
    (weights / "unet" / "model.safetensors").replace(weights / "unet" / "model.safetensors.bak")
    (weights / "other" / "model.safetensors").replace(weights / "unet" / "model.safetensors")
    message = _error(load_model, weights / "unet", "unet")
    assert "tensor time_embed.0.weight has shape [64, 16], expected [32, 8]" in message


def test_weights_folder_pairing(weights):
    save_model(UNet(dataclasses.replace(UN, latent_size=16, attention_resolutions=(8,))), weights / "unet", "unet")
    assert "latent_size is 16" in _error(load_weights_folder, weights)
    latent4 = dataclasses.replace(UN, in_channels=4, out_channels=4, latent_shift=(0.0,) * 4,
                                  latent_scale=(1.0,) * 4)
    save_model(UNet(latent4), weights / "unet", "unet")
    assert "embed_dim is 3" in _error(load_weights_folder, weights)
    for path in sorted((weights / "unet").iterdir()):
        path.unlink()
    (weights / "unet").rmdir()
    assert "has no unet/ sub-folder" in _error(load_weights_folder, weights)


def test_weights_sha256_is_stable_and_content_sensitive(weights, tmp_path):
    torch.manual_seed(0)
    copy = tmp_path / "copy"
    save_model(VQAutoencoder(AE), copy / "autoencoder", "autoencoder", extra={"training": {"steps": 3}})
    save_model(UNet(UN), copy / "unet", "unet")
    digest = weights_sha256(weights)
    assert len(digest) == 64 and digest == weights_sha256(weights) == weights_sha256(copy)
    config = copy / "unet" / "config.json"
    config.write_text(config.read_text() + " ")
    assert weights_sha256(copy) != digest


def test_missing_and_unexpected_tensors(weights):
    path = weights / "unet" / "model.safetensors"
    tensors = load_file(str(path))
    save_file({k: v for k, v in tensors.items() if k != "conv_out.bias"}, str(path))
    assert "tensor conv_out.bias is missing" in _error(load_model, weights / "unet", "unet")
    save_file({**tensors, "extra.weight": torch.zeros(2)}, str(path))
    assert "unexpected tensor extra.weight" in _error(load_model, weights / "unet", "unet")
