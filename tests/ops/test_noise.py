"""Noise sources: the counter-based one gives rng.normal's deviates per uid on every path; torch.randn's is
reproducible from its generator."""
import pytest
import torch

from augpaint_fast.ops import fused
from augpaint_fast.core import rng
from augpaint_fast.ops.noise import philox_noise, torch_noise


@pytest.mark.parametrize("path", ["auto", "ref"])
def test_philox_noise_is_the_reference_generator(monkeypatch, path):
    monkeypatch.setenv(fused.ENV_VAR, path)
    uids = torch.tensor([3, 2**32 - 1, 12345])
    got = philox_noise(9, uids, (3, 4, 5))(rng.STREAM_REPAINT + 7)
    want = rng.normal(9, uids, rng.STREAM_REPAINT + 7, (3, 4, 5))
    assert got.shape == (3, 3, 4, 5) and got.dtype == torch.float32
    if path == "ref" or fused.kernel_path("cpu") == "ref":
        assert torch.equal(got, want)
    else:  # the C++ normals: within 4 fp32 ulps of max(|n|, 1) (tests/ops/test_fused_cpp.py)
        assert (got - want).abs().max() <= 4 * torch.finfo(torch.float32).eps * want.abs().clamp_min(1).max()
    one = philox_noise(9, uids[1:2], (3, 4, 5))(rng.STREAM_REPAINT + 7)
    assert torch.equal(one[0], got[1])  # a sample's noise does not depend on its batch


def test_torch_noise_follows_its_generator():
    a = torch_noise((2, 3), generator=torch.Generator().manual_seed(4))
    b = torch_noise((2, 3), generator=torch.Generator().manual_seed(4))
    first = a(0)
    assert torch.equal(first, b(5))  # the stream number is ignored: draws come in order
    assert not torch.equal(first, a(0))
