"""Latent-diffusion U-Net and the shared layers: shapes, conditioning, initialisation, timestep use."""
import dataclasses
import math

import pytest
import torch

from augpaint_fast.models.config import UNetConfig, get_preset
from augpaint_fast.models import UNet
from augpaint_fast.models.layers import AttnBlock, Downsample, Upsample, timestep_embedding

MICRO = UNetConfig(latent_size=8, model_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                   attention_resolutions=(8, 4), num_head_channels=8, num_groups=4)


def _perturb(model, seed=0):
    """Give every all-zero parameter (the zero-initialised output convolutions, biases) random values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if torch.count_nonzero(p) == 0:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model


def test_tiny_preset_output_shape_and_zero_init():
    torch.manual_seed(0)
    cfg = get_preset("tiny").unet
    model = UNet(cfg)
    z = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = model(z, torch.tensor([0, 999]))
    assert out.shape == z.shape
    assert torch.count_nonzero(out) == 0


def test_micro_shape_on_non_square_latents():
    model = _perturb(UNet(MICRO))
    with torch.no_grad():
        out = model(torch.randn(3, 3, 8, 12), torch.tensor([1, 2, 3]))
    assert out.shape == (3, 3, 8, 12) and torch.isfinite(out).all()


def test_timestep_changes_output_once_perturbed():
    model = _perturb(UNet(MICRO))
    z = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        a = model(z, torch.tensor([10]))
        b = model(z, torch.tensor([500]))
        batched = model(z.expand(2, -1, -1, -1), torch.tensor([10, 500]))
    assert (a - b).abs().max() > 1e-3
    torch.testing.assert_close(batched, torch.cat([a, b]), rtol=1e-5, atol=1e-5)


def test_conditional_variant_requires_cond():
    cfg = dataclasses.replace(MICRO, cond_channels=2)
    model = _perturb(UNet(cfg))
    z, t = torch.randn(1, 3, 8, 8), torch.tensor([7])
    assert model.conv_in.in_channels == 5
    with torch.no_grad():
        out_a = model(z, t, torch.zeros(1, 2, 8, 8))
        out_b = model(z, t, torch.ones(1, 2, 8, 8))
    assert out_a.shape == (1, 3, 8, 8)
    assert (out_a - out_b).abs().max() > 1e-3
    with pytest.raises(ValueError, match="conditional"):
        model(z, t)
    with pytest.raises(ValueError, match="unconditional"):
        UNet(MICRO)(z, t, torch.zeros(1, 2, 8, 8))


def test_paper_parameter_count():
    with torch.device("meta"):
        model = UNet(get_preset("paper").unet)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - 274e6) / 274e6 < 0.03


def test_timestep_embedding():
    t = torch.tensor([0, 1, 250])
    emb = timestep_embedding(t, 8)
    assert emb.shape == (3, 8) and emb.dtype == torch.float32
    torch.testing.assert_close(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    freqs = torch.tensor([10000.0 ** (-i / 4) for i in range(4)])
    torch.testing.assert_close(emb[2], torch.cat([torch.cos(250 * freqs), torch.sin(250 * freqs)]))
    assert timestep_embedding(t, 7).shape == (3, 7)


def test_attention_matches_naive_multihead_attention():
    torch.manual_seed(3)
    block = AttnBlock(16, num_heads=2, num_groups=4, eps=1e-5)
    x = torch.randn(2, 16, 3, 5)
    with torch.no_grad():
        qkv = block.qkv(block.norm(x)).reshape(2, 2, 3, 8, 15)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, heads, d, T]
        weights = torch.softmax(q.transpose(-1, -2) @ k / math.sqrt(8), dim=-1)  # [B, heads, T, T]
        out = (v @ weights.transpose(-1, -2)).reshape(2, 16, 3, 5)
        expected = x + block.proj_out(out)
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


def test_resampling_shapes():
    x = torch.randn(1, 4, 6, 10)
    assert Downsample(4, asymmetric_pad=True)(x).shape == (1, 4, 3, 5)
    assert Downsample(4, asymmetric_pad=False)(x).shape == (1, 4, 3, 5)
    assert Upsample(4)(x).shape == (1, 4, 12, 20)


# -- feature caching split (DeepCache) and the inference fast paths -------------------------------------------------
def test_split_forward_is_bit_identical_to_forward_at_every_depth():
    """forward_with_feature's eps is forward's, bit for bit; forward_shallow on the feature of the same call
    reproduces it bit for bit too (the split recomputes nothing differently), at every skip index."""
    model = _perturb(UNet(MICRO)).eval()
    z, t = torch.randn(2, 3, 8, 12), torch.tensor([5, 900])
    with torch.no_grad():
        ref = model(z, t)
        for depth in range(model.num_skips):
            eps, feature = model.forward_with_feature(z, t, depth=depth)
            assert torch.equal(eps, ref)
            assert feature.shape == (2, *model.feature_shape(depth, 8, 12))
            assert torch.equal(model.forward_shallow(z, t, feature, depth=depth), ref)
    with pytest.raises(ValueError, match="skip index"):
        model.forward_shallow(z, t, feature, depth=model.num_skips)


def test_shallow_call_depends_on_the_cached_feature_and_the_outer_input():
    model = _perturb(UNet(MICRO)).eval()
    z, t = torch.randn(1, 3, 8, 8), torch.tensor([500])
    with torch.no_grad():
        eps, feature = model.forward_with_feature(z, t, depth=1)
        moved = model.forward_shallow(z + 0.5, t, feature, depth=1)
        stale = model.forward_shallow(z, t, feature * 1.5, depth=1)
    assert (moved - eps).abs().max() > 1e-3 and (stale - eps).abs().max() > 1e-3


def test_conditional_split():
    cfg = dataclasses.replace(MICRO, cond_channels=2)
    model = _perturb(UNet(cfg)).eval()
    z, t, c = torch.randn(1, 3, 8, 8), torch.tensor([7]), torch.randn(1, 2, 8, 8)
    with torch.no_grad():
        eps, feature = model.forward_with_feature(z, t, c, depth=2)
        assert torch.equal(eps, model(z, t, c))
        assert torch.equal(model.forward_shallow(z, t, feature, c, depth=2), eps)


def test_inference_paths_off_by_default_and_close_when_on():
    """Outside ``inference_paths`` the models run torch's ops unchanged; inside, the fused GroupNorm+SiLU and
    the flash-attention layout change eps by float32 rounding only (measured 8e-7 of its scale)."""
    from augpaint_fast.models.layers import inference_paths

    model = _perturb(UNet(MICRO)).eval()
    z, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 600])
    with torch.no_grad():
        ref = model(z, t)
        with inference_paths():
            assert torch.equal(model(z, t), ref)
        with inference_paths(fused_norm=True, flash_attention=True):
            fast = model(z, t)
        assert torch.equal(model(z, t), ref)  # the context is left behind cleanly
    assert (fast - ref).abs().max() <= 1e-5 * ref.abs().max()
