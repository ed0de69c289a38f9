"""The torch engine's flags: defaults unchanged, channels_last exact-ish, bf16 close, bad options refused."""
from __future__ import annotations

import pytest
import torch

from augpaint_fast.engines import create_engine
from augpaint_fast.engines.torch_engine import TorchEngine
from augpaint_fast.errors import AugPaintError
from tests.engines._models import random_models


@pytest.fixture(scope="module")
def models():
    return random_models("tiny")


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(2, 3, 16, 16, generator=g), torch.tensor([10, 800]),
            torch.rand(2, 3, 64, 64, generator=g) * 2 - 1)


def test_default_is_eager_fp32(models, inputs):
    ae, unet = models
    z, t, x = inputs
    e = create_engine("torch", ae, unet)
    assert e.dtype == torch.float32 and not e.channels_last and not e.cuda_graphs
    with torch.no_grad():
        assert torch.equal(e.denoiser(z, t), unet(z, t))
        assert torch.equal(e.encode(x), ae.encode(x))
        assert torch.equal(e.decode(z * 0.05), ae.decode(z * 0.05))


def test_channels_last_matches(models, inputs):
    ae, unet = models
    z, t, x = inputs
    ref = TorchEngine(ae, unet)
    ref_out = (ref.denoiser(z, t), ref.encode(x), ref.decode(z * 0.05))
    e = TorchEngine(ae, unet, channels_last=True)
    got = (e.denoiser(z, t), e.encode(x), e.decode(z * 0.05))
    for a, b in zip(got, ref_out):
        assert a.is_contiguous() and (a - b).abs().max() <= 1e-4 * b.abs().max()
    assert unet.conv_in.weight.is_contiguous()  # the caller's modules are not converted


@pytest.mark.slow
def test_bf16_close_to_fp32(models, inputs):
    ae, unet = models
    z, t, x = inputs
    ref = TorchEngine(ae, unet)
    e = TorchEngine(ae, unet, dtype="bfloat16", autoencoder_dtype="bfloat16")
    a, b = e.denoiser(z, t), ref.denoiser(z, t)
    assert a.dtype == torch.float32
    # bf16 keeps 8 mantissa bits: the U-Net output stays within a few percent of its scale.
    assert (a - b).abs().max() <= 0.05 * b.abs().max()
    h = z * 0.05
    assert (e.decode(h) - ref.decode(h)).abs().max() <= 0.05 * ref.decode(h).abs().max()


def test_bad_options(models):
    ae, unet = models
    with pytest.raises(AugPaintError, match="unknown dtype"):
        TorchEngine(ae, unet, dtype="int8")
    with pytest.raises(AugPaintError, match="GPU dtype"):
        TorchEngine(ae, unet, dtype="float16")
    if not torch.cuda.is_available():
        with pytest.raises(AugPaintError, match="CUDA graphs need a CUDA device"):
            TorchEngine(ae, unet, cuda_graphs=True)
    with pytest.raises(AugPaintError, match="unknown engine"):
        create_engine("nope", ae, unet)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible to torch here)")
def test_cuda_graphs_and_fp16_match_eager(models, inputs):
    ae, unet = models
    z, t, _ = inputs
    ref = TorchEngine(ae, unet, device="cuda")
    graphed = TorchEngine(ae, unet, device="cuda", cuda_graphs=True, batch_sizes=(1, 4))
    b = ref.denoiser(z.cuda(), t.cuda())
    assert (graphed.denoiser(z.cuda(), t.cuda()) - b).abs().max() <= 1e-4 * b.abs().max()
    half = TorchEngine(ae, unet, device="cuda", dtype="float16")
    assert (half.denoiser(z.cuda(), t.cuda()) - b).abs().max() <= 0.02 * b.abs().max()


@pytest.mark.slow
def test_fast_paths_default_off_in_fp32_on_in_bf16(models, inputs):
    ae, unet = models
    z, t, x = inputs
    plain = TorchEngine(ae, unet)
    assert not plain.fused_norm and not plain.flash_attention and plain.cache_interval == 1
    bf16 = TorchEngine(ae, unet, dtype="bfloat16")
    assert bf16.fused_norm and bf16.flash_attention
    # fp32 with both fast paths: float32 rounding only (measured 2e-7 of the scale on these models)
    fast = TorchEngine(ae, unet, fused_norm=True, flash_attention=True)
    for a, b in ((fast.denoiser(z, t), plain.denoiser(z, t)), (fast.encode(x), plain.encode(x)),
                 (fast.decode(z * 0.05), plain.decode(z * 0.05))):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()
    # bf16 with the fast paths is as close to fp32 as bf16 autocast without them
    slow = TorchEngine(ae, unet, dtype="bfloat16", fused_norm=False, flash_attention=False)
    ref = plain.denoiser(z, t)
    err_fast, err_slow = ((e.denoiser(z, t) - ref).abs().max().item() for e in (bf16, slow))
    print(f"bf16 vs fp32 U-Net: fast paths {err_fast:.3g}, autocast only {err_slow:.3g}")
    assert err_fast <= 2 * err_slow + 1e-6


def test_fused_norm_and_compile_are_refused_together(models):
    ae, unet = models
    with pytest.raises(AugPaintError, match="fused_norm and compile"):
        TorchEngine(ae, unet, fused_norm=True, compile="default")
    with pytest.raises(AugPaintError, match="cache_interval"):
        TorchEngine(ae, unet, cache_interval=0)
