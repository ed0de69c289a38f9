"""The AugPaint sampler (DESIGN.md §3) over toy denoisers: golden values and an independent float64 loop."""
import numpy as np
import pytest
import torch

from augpaint_fast.core import rng
from augpaint_fast.core.sampler import augpaint_sample, fused_step_ref, initial_latent
from augpaint_fast.core.schedule import alphas_cumprod, ddim_schedule


ABAR = torch.tensor(alphas_cumprod(), dtype=torch.float32)


def toy_denoiser(z, t):
    """The exact eps-prediction for data ~ N(0, 0.5^2), plus a small nonlinearity; elementwise, so batch
    composition cannot change its output, and stable, so the loop stays in a realistic range."""
    a = ABAR[t][:, None, None, None]
    return torch.sqrt(1 - a) * z / (0.25 * a + 1 - a) + 0.05 * torch.tanh(z)


def _setup(batch=3, shape=(3, 5, 6)):
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn((batch, *shape), generator=g)
    mask = (torch.rand((batch, 1, *shape[1:]), generator=g) > 0.5).float()
    uids = torch.tensor([rng.sample_uid(f"s{i}", 0) for i in range(batch)])
    return z0, mask, uids


def _numpy_loop(z0, mask, uids, seed, steps, eta):
    """Algorithm 1 as DESIGN.md §3 writes it, in float64 numpy, noise from the reference generator."""
    s = ddim_schedule(steps, eta)
    shape = tuple(z0.shape[1:])
    noise = lambda stream: rng.normal(seed, uids, stream, shape).double().numpy()  # noqa: E731
    z0, m = z0.double().numpy(), mask.double().numpy()
    z = m * (np.sqrt(s.a_t[0]) * z0 + np.sqrt(1 - s.a_t[0]) * noise(1)) + (1 - m) * noise(0)
    abar = alphas_cumprod()
    for j in range(steps):
        a = abar[s.timesteps[j]]
        eps = np.sqrt(1 - a) * z / (0.25 * a + 1 - a) + 0.05 * np.tanh(z)
        x0 = (z - np.sqrt(1 - s.a_t[j]) * eps) / np.sqrt(s.a_t[j])
        zprev = np.sqrt(s.a_prev[j]) * x0 + np.sqrt(1 - s.a_prev[j] - s.sigma[j] ** 2) * eps + s.sigma[j] * noise(3 + 2 * j)
        known = np.sqrt(s.a_prev[j]) * z0 + np.sqrt(1 - s.a_prev[j]) * noise(2 + 2 * j)
        z = m * known + (1 - m) * zprev
    return z


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_full_loop_matches_float64_reimplementation(eta):
    z0, mask, uids = _setup()
    out = augpaint_sample(toy_denoiser, z0, mask, uids, seed=11, schedule=ddim_schedule(20, eta))
    expected = _numpy_loop(z0, mask, uids, 11, 20, eta)
    # float32 arithmetic over 20 steps: measured max error 3.6e-7 (|z| <= 3.5); bound it at 2e-6.
    np.testing.assert_allclose(out.numpy(), expected, atol=2e-6, rtol=0)


def test_full_loop_golden_values():
    """Pins the numerics (schedule, RNG streams, step order) against values recorded from this implementation."""
    z0, mask, uids = _setup()
    out = augpaint_sample(toy_denoiser, z0, mask, uids, seed=11, schedule=ddim_schedule(50, 1.0))
    assert out.sum().item() == pytest.approx(GOLDEN_SUM, abs=1e-5)
    np.testing.assert_allclose(out[1, :, 2, 3].numpy(), GOLDEN_PIXEL, atol=1e-6)


def test_known_region_ends_at_the_clean_latent():
    z0, mask, uids = _setup()
    out = augpaint_sample(toy_denoiser, z0, mask, uids, seed=1, schedule=ddim_schedule(10, 1.0))
    known = mask.expand_as(z0).bool()
    assert torch.allclose(out[known], z0[known], atol=1e-6)
    assert not torch.allclose(out[~known], z0[~known], atol=0.1)


def test_known_part_feeds_each_call_at_its_own_noise_level():
    """The off-by-one of diffusers #3730: the U-Net at call j must see the known latent noised to a_t(j)."""
    z0 = torch.zeros(1, 1, 4, 4)
    mask = torch.ones(1, 1, 4, 4)
    seen = []
    s = ddim_schedule(5, 1.0)

    def recorder(z, t):
        seen.append(z.clone())
        return torch.zeros_like(z)

    augpaint_sample(recorder, z0, mask, torch.tensor([9]), seed=0, schedule=s)
    for j, z in enumerate(seen):
        stream = rng.STREAM_E_INIT if j == 0 else rng.stream_e(j - 1)
        expected = np.sqrt(1 - s.a_t[j]) * rng.normal(0, torch.tensor([9]), stream, (1, 4, 4))
        assert torch.allclose(z, expected.float(), atol=1e-6), f"call {j}"


def test_batch_size_and_order_do_not_change_samples():
    z0, mask, uids = _setup(batch=4)
    s = ddim_schedule(8, 1.0)
    full = augpaint_sample(toy_denoiser, z0, mask, uids, 5, s)
    order = torch.tensor([2, 0, 3, 1])
    shuffled = augpaint_sample(toy_denoiser, z0[order], mask[order], uids[order], 5, s)
    single = torch.cat([augpaint_sample(toy_denoiser, z0[i:i + 1], mask[i:i + 1], uids[i:i + 1], 5, s) for i in range(4)])
    assert torch.equal(shuffled, full[order])  # an elementwise denoiser makes them bit-identical
    assert torch.equal(single, full)


def test_different_seed_or_uid_gives_a_different_sample():
    z0, mask, uids = _setup(batch=1)
    s = ddim_schedule(8, 1.0)
    a = augpaint_sample(toy_denoiser, z0, mask, uids, 5, s)
    assert not torch.equal(a, augpaint_sample(toy_denoiser, z0, mask, uids, 6, s))
    assert not torch.equal(a, augpaint_sample(toy_denoiser, z0, mask, uids + 1, 5, s))
    assert torch.equal(a, augpaint_sample(toy_denoiser, z0, mask, uids, 5, s))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reference_step_keeps_dtype_and_computes_in_float32(dtype):
    z0, mask, uids = _setup()
    table = ddim_schedule(10, 1.0).table()
    z = initial_latent(z0, mask, table, 3, uids)
    eps = toy_denoiser(z, torch.full((3,), 500))
    out = fused_step_ref(z.to(dtype), eps.to(dtype), z0.to(dtype), mask, table, 4, 3, uids)
    ref = fused_step_ref(z.to(dtype).float(), eps.to(dtype).float(), z0.to(dtype).float(), mask, table, 4, 3, uids)
    assert out.dtype == dtype
    assert torch.equal(out, ref.to(dtype))


GOLDEN_SUM = -0.9721059203147888
GOLDEN_PIXEL = [0.21300435066223145, 0.6366007328033447, 0.4725095331668854]
