"""Configs and presets: validation, dict round trip, preset lookup."""
import json

import pytest

from augpaint_fast.models.config import PRESETS, AutoencoderConfig, Preset, UNetConfig, get_preset
from augpaint_fast.errors import AugPaintError


def test_presets_are_consistent():
    assert set(PRESETS) == {"paper", "small", "tiny"}
    for name, preset in PRESETS.items():
        assert preset.name == name
        assert preset.image_size // preset.autoencoder.downsample_factor == preset.unet.latent_size
    assert PRESETS["paper"].autoencoder.n_embed == 8192
    assert PRESETS["tiny"].unet.latent_size == 16 and PRESETS["small"].unet.latent_size == 32


def test_get_preset_unknown_lists_valid_names():
    assert get_preset("tiny") is PRESETS["tiny"]
    with pytest.raises(AugPaintError) as info:
        get_preset("huge")
    message = str(info.value)
    assert "\n" not in message
    assert "'huge'" in message and "paper, small, tiny" in message


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_dict_round_trip_through_json(name):
    preset = PRESETS[name]
    for cfg in (preset.autoencoder, preset.unet):
        data = json.loads(json.dumps(cfg.to_dict()))
        assert type(cfg).from_dict(data) == cfg


def test_from_dict_rejects_unknown_and_missing_keys():
    data = UNetConfig().to_dict()
    with pytest.raises(AugPaintError, match="unknown key.*colour"):
        UNetConfig.from_dict({**data, "colour": 1})
    del data["num_groups"]
    with pytest.raises(AugPaintError, match="missing key.*num_groups"):
        UNetConfig.from_dict(data)
    with pytest.raises(AugPaintError, match="JSON object"):
        AutoencoderConfig.from_dict([1, 2])


def test_from_dict_rejects_bad_types():
    data = AutoencoderConfig().to_dict()
    with pytest.raises(AugPaintError, match=r"AutoencoderConfig\.ch:"):
        AutoencoderConfig.from_dict({**data, "ch": "128"})
    with pytest.raises(AugPaintError, match=r"attn_in_mid"):
        AutoencoderConfig.from_dict({**data, "attn_in_mid": 1})


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"attention_resolutions": (32, 12)}, "not level resolutions"),
        ({"latent_size": 60}, "not a multiple of 8"),
        ({"num_groups": 5}, "num_groups=5"),
        ({"latent_shift": (0.0, 0.0)}, "latent_shift needs 3"),
        ({"latent_scale": (1.0, 0.0, 1.0)}, "positive"),
        ({"num_head_channels": 48}, "num_head_channels=48"),
    ],
)
def test_unet_config_validation(kwargs, pattern):
    with pytest.raises(AugPaintError, match=pattern):
        UNetConfig(**kwargs)


def test_autoencoder_config_validation():
    assert AutoencoderConfig().downsample_factor == 4 and AutoencoderConfig().latent_size == 64
    with pytest.raises(AugPaintError, match="resolution 30"):
        AutoencoderConfig(resolution=30)
    with pytest.raises(AugPaintError, match="num_groups=32"):
        AutoencoderConfig(ch=24)


def test_preset_checks_pairing():
    with pytest.raises(AugPaintError, match="latent_size"):
        Preset("bad", 256, AutoencoderConfig(), UNetConfig(latent_size=32, attention_resolutions=(16, 8)))
    with pytest.raises(AugPaintError, match="resolution"):
        Preset("bad", 128, AutoencoderConfig(), UNetConfig())
