"""The RePaint baseline: its jump schedule against the original's call counts, the sampler against an independent
float64 loop written from the paper's Algorithm 1, golden values on a tiny random U-Net, its conventions."""
import numpy as np
import pytest
import torch

from augpaint_fast.core import rng
from augpaint_fast.bench.runner import perturbed
from augpaint_fast.models.config import get_preset
from augpaint_fast.errors import AugPaintError
from augpaint_fast.models import UNet
from augpaint_fast.ops.noise import torch_noise
from augpaint_fast.bench.repaint import (
    get_schedule_jump,
    pixel_unet_config,
    repaint_sample,
    repaint_schedule,
    stream_init,
    stream_known,
    stream_posterior,
)
from augpaint_fast.core.schedule import alphas_cumprod, ddim_schedule

ABAR = torch.tensor(alphas_cumprod(), dtype=torch.float32)


def toy_denoiser(z, t):
    """Exact eps for data ~ N(0, 0.5^2) plus a small nonlinearity (elementwise: batching cannot matter)."""
    a = ABAR[t][:, None, None, None]
    return torch.sqrt(1 - a) * z / (0.25 * a + 1 - a) + 0.05 * torch.tanh(z)


def _setup(batch=2, shape=(3, 4, 5)):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn((batch, *shape), generator=g)
    mask = (torch.rand((batch, 1, *shape[1:]), generator=g) > 0.5).float()
    uids = torch.tensor([rng.sample_uid(f"s{i}", 0) for i in range(batch)])
    return x0, mask, uids


@pytest.mark.parametrize("steps, length, n_sample, calls", [(50, 10, 5, 210), (250, 10, 10, 2410)])
def test_schedule_reproduces_the_original_call_counts(steps, length, n_sample, calls):
    s = repaint_schedule(steps, length, n_sample)
    assert s.unet_calls == calls
    assert s.forward_jumps == calls - steps
    times = s.times
    assert times[0] == steps - 1 and times[-1] == -1
    assert all(abs(a - b) == 1 for a, b in zip(times[:-1], times[1:]))  # RePaint's _check_times
    assert min(times) == -1 and max(times) == steps - 1


def test_schedule_small_case_by_hand():
    # t_T = 4, jump 2 x 2: down to 0, back up 2, down again: jumps only at multiples of 2 below t_T - 2 = 2.
    assert get_schedule_jump(4, 2, 2) == [3, 2, 1, 0, 1, 2, 1, 0, -1]
    assert get_schedule_jump(3, 10, 5) == [2, 1, 0, -1]  # no jump fits
    assert get_schedule_jump(6, 2, 3) == [5, 4, 3, 2, 3, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, -1]
    with pytest.raises(AugPaintError, match="jump_length"):
        get_schedule_jump(10, 0, 2)


def test_time_grid_is_the_ddim_grid():
    s = repaint_schedule(50)
    assert list(s.timesteps) == sorted(ddim_schedule(50).timesteps)
    assert s.timesteps[0] == 1 and s.timesteps[-1] == 981
    assert s.beta(0) == pytest.approx(1 - alphas_cumprod()[1])
    sqrt_a, sqrt_1ma, c1, c2, std = s.reverse_coefficients(0)  # the last call returns x0^ exactly
    assert (c1, c2, std) == (pytest.approx(1.0), pytest.approx(0.0, abs=1e-12), 0.0)


def _numpy_repaint(x0, mask, uids, seed, steps, length, n_sample):
    """RePaint written out from the paper (Algorithm 1: line 7's form of the reverse mean) in float64 numpy,
    on a hand-listed schedule for the small case, with the same streams."""
    abar_all = alphas_cumprod()
    tau = np.arange(0, 1000, 1000 // steps)[:steps] + 1
    abar = abar_all[tau]
    shape = tuple(x0.shape[1:])
    noise = lambda stream: rng.normal(seed, uids, stream, shape).double().numpy()  # noqa: E731
    x0, m = x0.double().numpy(), mask.double().numpy()
    assert (steps, length, n_sample) == (4, 2, 2)  # the schedule below is listed by hand for this case
    times = [3, 2, 1, 0, 1, 2, 1, 0, -1]
    x = noise(rng.STREAM_REPAINT)
    for k, (i, j) in enumerate(zip(times[:-1], times[1:])):
        a_prev = abar[i - 1] if i > 0 else 1.0
        beta = 1 - abar[i] / a_prev
        if j < i:
            x = m * (np.sqrt(abar[i]) * x0 + np.sqrt(1 - abar[i]) * noise(rng.STREAM_REPAINT + 1 + 2 * k)) + (1 - m) * x
            eps = toy_denoiser(torch.from_numpy(x), torch.full((x.shape[0],), int(tau[i]))).numpy()
            mean = (x - beta / np.sqrt(1 - abar[i]) * eps) / np.sqrt(1 - beta)
            var = beta * (1 - a_prev) / (1 - abar[i])
            x = mean + (np.sqrt(var) * noise(rng.STREAM_REPAINT + 2 + 2 * k) if i > 0 else 0)
        else:
            b_next = 1 - abar[j] / abar[i]
            x = np.sqrt(1 - b_next) * x + np.sqrt(b_next) * noise(rng.STREAM_REPAINT + 1 + 2 * k)
    return m * x0 + (1 - m) * x


def test_small_case_matches_the_paper_written_out():
    x0, mask, uids = _setup()
    out = repaint_sample(toy_denoiser, x0, mask, uids, 3, repaint_schedule(4, 2, 2))
    expected = _numpy_repaint(x0, mask, uids, 3, 4, 2, 2)
    # float32 over 6 calls and 2 jumps vs float64 (normals from C++ or the reference: a few ulps): measured
    # max error 2e-7; bound 2e-6.
    np.testing.assert_allclose(out.numpy(), expected, atol=2e-6, rtol=0)


def test_known_part_feeds_each_call_at_its_own_noise_level():
    x0, mask = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    s = repaint_schedule(6, 2, 2)
    seen = []

    def recorder(z, t):
        seen.append((int(t[0]), z.clone()))
        return torch.zeros_like(z)

    repaint_sample(recorder, x0, mask, torch.tensor([9]), 0, s)
    reverse = [(k, i) for k, (i, j) in enumerate(s.transitions) if j < i]
    assert len(seen) == len(reverse) == s.unet_calls
    for (t, z), (k, i) in zip(seen, reverse):
        assert t == s.timesteps[i]
        expected = np.sqrt(1 - s.abar[i]) * rng.normal(0, torch.tensor([9]), stream_known(k), (1, 4, 4))
        assert torch.allclose(z, expected.float(), atol=1e-5), f"transition {k}"


def test_known_region_is_the_clean_input_and_batches_do_not_matter():
    x0, mask, uids = _setup(batch=3)
    s = repaint_schedule(8, 2, 3)
    full = repaint_sample(toy_denoiser, x0, mask, uids, 5, s)
    known = mask.expand_as(x0).bool()
    assert torch.equal(full[known], x0[known])
    assert not torch.allclose(full[~known], x0[~known], atol=0.1)
    single = torch.cat([repaint_sample(toy_denoiser, x0[i:i + 1], mask[i:i + 1], uids[i:i + 1], 5, s)
                        for i in range(3)])
    assert torch.equal(single, full)
    assert not torch.equal(full, repaint_sample(toy_denoiser, x0, mask, uids, 6, s))


def test_streams_never_meet_augpaints():
    s = repaint_schedule(500, 10, 10)
    used = {stream_init()} | {f(k) for k in range(len(s.transitions)) for f in (stream_known, stream_posterior)}
    augpaint = {rng.STREAM_ZHAT, rng.STREAM_E_INIT, rng.STREAM_FLIP}
    augpaint |= {f(j) for j in range(1000) for f in (rng.stream_e, rng.stream_xi)}
    assert not used & augpaint
    assert max(used) < rng.STREAM_FLIP


def test_torch_noise_source_and_clipping():
    x0, mask, uids = _setup()
    s = repaint_schedule(5, 2, 2)
    noise = torch_noise(tuple(x0.shape), generator=torch.Generator().manual_seed(1))
    out = repaint_sample(lambda z, t: torch.zeros_like(z), x0, mask, uids, 0, s, noise=noise, clip_denoised=True)
    generated = out[~mask.expand_as(x0).bool()]
    assert generated.abs().max() <= 1.0 + 1e-6  # the last call returns the clipped x0^


def test_golden_values_on_a_tiny_random_unet():
    """Pins the sampler end to end on a real U-Net (tiny preset, random weights of seed 0)."""
    torch.manual_seed(0)
    unet = perturbed(UNet(get_preset("tiny").unet), 0)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(2, 3, 16, 16, generator=g)
    mask = torch.zeros(2, 1, 16, 16)
    mask[:, :, 4:12, 4:12] = 1
    uids = torch.tensor([rng.sample_uid("golden", k) for k in range(2)])
    with torch.no_grad():
        out = repaint_sample(lambda z, t: unet(z, t), x0, mask, uids, 7, repaint_schedule(5, 2, 2))
    # |x| reaches 86 (a random U-Net is no noise predictor); measured between the C++ and the reference
    # normals, threads and batch sizes: up to 2.3e-5 absolute; bound 1e-4 absolute + 2e-5 relative.
    assert out.sum().item() == pytest.approx(GOLDEN_SUM, rel=2e-5)
    np.testing.assert_allclose(out[1, :, 0, 0].numpy(), GOLDEN_PIXEL, rtol=2e-5, atol=1e-4)
    np.testing.assert_allclose(out[0, :, 15, 3].numpy(), GOLDEN_PIXEL_2, rtol=2e-5, atol=1e-4)


def test_pixel_unet_config_matches_the_preset():
    for name in ("tiny", "small", "paper"):
        p, c = get_preset(name), pixel_unet_config(name)
        f = p.autoencoder.downsample_factor
        assert c.latent_size == p.image_size and c.in_channels == c.out_channels == 3
        assert c.level_resolutions[-len(p.unet.channel_mult):] == p.unet.level_resolutions  # same deep levels
        assert c.channel_mult[-len(p.unet.channel_mult):] == p.unet.channel_mult
        assert len(c.channel_mult) == len(p.unet.channel_mult) + int(np.log2(f))
        assert c.attention_resolutions == p.unet.attention_resolutions
    with torch.device("meta"):
        out = UNet(pixel_unet_config("tiny"))(torch.empty(1, 3, 64, 64), torch.zeros(1, dtype=torch.int64))
    assert out.shape == (1, 3, 64, 64)


GOLDEN_SUM = 730.5863647460938  # 5 steps on the uniform grid (t = 1, 201, ..., 801), jumps 2 x 2: 9 calls
GOLDEN_PIXEL = [-17.032604217529297, 18.285520553588867, -3.024611473083496]
GOLDEN_PIXEL_2 = [11.01597785949707, 11.571578979492188, -3.145688772201538]
