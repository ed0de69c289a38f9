"""VQ autoencoder: shapes, quantisation, straight-through gradient, codebook maintenance."""
import dataclasses

import pytest
import torch

from augpaint_fast.models.config import AutoencoderConfig, get_preset
from augpaint_fast.models import VQAutoencoder
from augpaint_fast.models.layers import AttnBlock

MICRO = AutoencoderConfig(resolution=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, z_channels=4, embed_dim=2,
                          n_embed=16, num_groups=4)


@pytest.fixture(scope="module")
def micro():
    torch.manual_seed(0)
    return VQAutoencoder(MICRO)


def test_tiny_preset_shapes():
    torch.manual_seed(0)
    cfg = get_preset("tiny").autoencoder
    model = VQAutoencoder(cfg).eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        h = model.encode(x)
        assert h.shape == (1, cfg.embed_dim, 16, 16)
        assert model.decode(h).shape == x.shape
        xrec, codebook_loss, commit_loss, indices = model(x)
    assert xrec.shape == x.shape and indices.shape == (1, 16, 16)
    assert codebook_loss.ndim == 0 and commit_loss.ndim == 0


@pytest.mark.parametrize("attn_in_mid", [True, False])
def test_micro_shapes(attn_in_mid):
    cfg = dataclasses.replace(MICRO, attn_in_mid=attn_in_mid)
    model = VQAutoencoder(cfg)
    x = torch.randn(3, 3, 16, 24)
    h = model.encode(x)
    assert h.shape == (3, 2, 8, 12)
    assert model.decode(h).shape == (3, 3, 16, 24)
    assert isinstance(model.encoder.mid.attn_1, AttnBlock) == attn_in_mid


def test_quantize_picks_nearest_code_and_losses(micro):
    h = torch.randn(2, 2, 4, 5) * 0.05
    zq, codebook_loss, commit_loss, indices = micro.quantize(h)
    assert indices.dtype == torch.int64 and indices.shape == (2, 4, 5)
    assert 0 <= int(indices.min()) and int(indices.max()) < MICRO.n_embed
    codes = micro.quantizer.embedding.weight
    flat = h.permute(0, 2, 3, 1).reshape(-1, 2)
    brute = torch.cdist(flat, codes).argmin(dim=1).reshape(2, 4, 5)
    assert torch.equal(indices, brute)
    exact = codes[indices].permute(0, 3, 1, 2)
    torch.testing.assert_close(zq, exact)
    mse = ((exact - h) ** 2).mean()
    torch.testing.assert_close(codebook_loss, mse)
    torch.testing.assert_close(commit_loss, MICRO.beta * mse)


def test_decode_uses_exact_codebook_vectors(micro):
    h = torch.randn(1, 2, 4, 4) * 0.05
    _, _, _, indices = micro.quantize(h)
    exact = micro.quantizer.embedding.weight[indices].permute(0, 3, 1, 2)
    with torch.no_grad():
        assert torch.equal(micro.decode(h), micro.decode_quantized(exact))


def test_straight_through_gradient_reaches_encoder_and_codebook():
    torch.manual_seed(1)
    model = VQAutoencoder(MICRO)
    xrec, codebook_loss, commit_loss, _ = model(torch.randn(2, 3, 16, 16))
    ((xrec ** 2).mean()).backward(retain_graph=True)
    enc_grad = model.encoder.conv_in.weight.grad
    assert enc_grad is not None and enc_grad.abs().sum() > 0
    assert model.quantizer.embedding.weight.grad is None or model.quantizer.embedding.weight.grad.abs().sum() == 0
    model.zero_grad()
    codebook_loss.backward(retain_graph=True)
    assert model.quantizer.embedding.weight.grad.abs().sum() > 0
    assert model.encoder.conv_in.weight.grad is None or model.encoder.conv_in.weight.grad.abs().sum() == 0
    model.zero_grad()
    commit_loss.backward()
    assert model.encoder.conv_in.weight.grad.abs().sum() > 0


def test_codebook_usage_counts(micro):
    indices = torch.tensor([[[0, 3], [3, 15]]])
    counts = micro.codebook_usage(indices)
    assert counts.shape == (MICRO.n_embed,)
    assert counts.tolist() == [1, 0, 0, 2] + [0] * 11 + [1]


def test_reseed_dead_codes_changes_only_dead_codes():
    torch.manual_seed(2)
    model = VQAutoencoder(MICRO)
    before = model.quantizer.embedding.weight.detach().clone()
    counts = torch.zeros(MICRO.n_embed, dtype=torch.int64)
    counts[[0, 5, 9]] = torch.tensor([3, 10, 2])
    h = torch.randn(2, 2, 3, 3) + 5.0
    reseeded = model.reseed_dead_codes(h, counts, threshold=3, generator=torch.Generator().manual_seed(0))
    after = model.quantizer.embedding.weight.detach()
    dead = counts < 3
    assert reseeded == int(dead.sum()) == 14
    assert torch.equal(after[~dead], before[~dead])
    assert not torch.isclose(after[dead], before[dead]).any()
    candidates = h.permute(0, 2, 3, 1).reshape(-1, 2)
    for row in after[dead]:
        assert (candidates == row).all(dim=1).any()
    assert model.reseed_dead_codes(h, torch.full((MICRO.n_embed,), 5), threshold=3) == 0
