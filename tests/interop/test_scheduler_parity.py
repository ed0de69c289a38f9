"""The project's DDIM and RePaint arithmetic against diffusers' ``DDIMScheduler`` and ``RePaintScheduler``:
same betas, same noise, same steps.

Deliberate differences (the project's conventions, ``schedule.py`` and ``repaint.py``):
- Time grid. For step counts that divide 1000 and start at the top (S = 50 included) the project's grid is
  CompVis' ``arange(0, T, T // S) + 1``, which is diffusers' ``timestep_spacing="leading"`` with
  ``steps_offset=1``; otherwise it is diffusers' ``"trailing"`` grid. diffusers' DDIM step then takes
  ``a_prev = abar[t - T // S]``, which on a trailing grid of S = 3 (999, 666, 332) is abar[333] where the
  project takes the next grid point abar[332]; the test checks the grids there, and the whole run on S = 50.
- RePaint. diffusers' RePaint grid has no +1 offset (980 .. 0 for S = 50); the project calls the U-Net at the
  DDIM grid's t (981 .. 1) so AugPaint and RePaint are compared per call: the reverse step is checked at the
  project's timesteps. diffusers feeds the known part at the *next* call's noise level (its #3730) and reuses
  one noise draw for it and the posterior; the project noises the known part at the call's own level with its
  own draw, so the reverse step is compared on the unknown region (mask 0). A forward jump is one respaced
  step in the project and ``T // S`` single-step diffusions in diffusers: equal in distribution, so their
  signal coefficients are compared. diffusers' RePaint clips x0^ to [-1, 1] by default (pixel space); the
  project clips only with ``clip_denoised`` (never on latents), so the comparison runs with ``clip_sample=False``.
"""
import numpy as np
import pytest
import torch

from augpaint_fast.core import rng
from augpaint_fast.bench.repaint import forward_jump, repaint_schedule, reverse_step
from augpaint_fast.core.sampler import fused_step_ref
from augpaint_fast.core.schedule import alphas_cumprod, ddim_schedule

diffusers = pytest.importorskip("diffusers")
from diffusers.schedulers import scheduling_repaint as repaint_module  # noqa: E402

LDM_BETAS = dict(num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear")


def _eps(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A stand-in denoiser that depends on both inputs."""
    return 0.3 * z + torch.sin(t.to(torch.float32) / 100.0)[:, None, None, None]


def test_betas_match():
    sched = diffusers.DDIMScheduler(**LDM_BETAS)
    np.testing.assert_allclose(sched.alphas_cumprod.numpy(), alphas_cumprod(), rtol=2e-6)  # theirs is float32


@pytest.mark.parametrize("steps, spacing", [(50, "leading"), (3, "trailing"), (1, "trailing")])
def test_ddim_time_grid(steps, spacing):
    sched = diffusers.DDIMScheduler(**LDM_BETAS, steps_offset=1, timestep_spacing=spacing)
    sched.set_timesteps(steps)
    np.testing.assert_array_equal(sched.timesteps.numpy(), ddim_schedule(steps).timesteps)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_run_matches(eta):
    steps, shape, seed = 50, (3, 8, 8), 5
    uids = torch.arange(2, dtype=torch.int64)
    sched = diffusers.DDIMScheduler(**LDM_BETAS, steps_offset=1, clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(steps)
    ours = ddim_schedule(steps, eta=eta)
    table = ours.table()
    z = rng.normal(seed, uids, rng.STREAM_ZHAT, shape)
    theirs = z.clone()
    zeros = torch.zeros(2, 1, *shape[1:])
    for j, t in enumerate(sched.timesteps):
        tt = torch.full((2,), int(t), dtype=torch.int64)
        assert int(t) == int(ours.timesteps[j])
        z = fused_step_ref(z, _eps(z, tt), torch.zeros_like(z), zeros, table, j, seed, uids)  # mask 0: all generated
        xi = rng.normal(seed, uids, rng.stream_xi(j), shape)
        theirs = sched.step(_eps(theirs, tt), t, theirs, eta=eta, variance_noise=xi).prev_sample
    torch.testing.assert_close(z, theirs, atol=1e-5, rtol=1e-5)


def test_repaint_reverse_step_matches_on_the_unknown_region(monkeypatch):
    steps, shape = 50, (2, 3, 8, 8)
    sched = diffusers.RePaintScheduler(**LDM_BETAS, eta=1.0, clip_sample=False)  # latents: no clipping
    sched.set_timesteps(steps, jump_length=10, jump_n_sample=5)
    ours = repaint_schedule(steps)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(shape[0], 1, *shape[2:])
    for i in (steps - 1, 20, 0):  # top, middle, and the last call (no noise, a_prev = 1)
        t = int(ours.timesteps[i])
        post = torch.randn(shape, generator=torch.Generator().manual_seed(i))
        monkeypatch.setattr(repaint_module, "randn_tensor", lambda *a, **k: post)  # diffusers draws the same noise

        def noise(stream):  # only the posterior draw matters with nothing known
            return post if stream == rng.STREAM_REPAINT + 2 else torch.zeros(shape)

        got = reverse_step(_eps, x, torch.zeros_like(x), mask, ours, i, 0, noise)
        tt = torch.full((shape[0],), t, dtype=torch.int64)
        want = sched.step(_eps(x, tt), t, x, torch.zeros_like(x), mask,
                          generator=None).prev_sample
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_repaint_forward_jump_is_diffusers_undo_steps_in_distribution():
    steps = 50
    sched = diffusers.RePaintScheduler(**LDM_BETAS)
    sched.set_timesteps(steps, jump_length=10, jump_n_sample=5)
    ours = repaint_schedule(steps)
    n = 1000 // steps
    for i in (0, 24, steps - 2):
        t = int(ours.timesteps[i])  # the jump from index i to i + 1 spans t .. t + n - 1 single steps
        signal = float(torch.prod(torch.sqrt(1 - sched.betas[t + 1:t + 1 + n].double())))
        x = torch.ones(1, 1, 1, 1)
        ours_signal = float(forward_jump(x, ours, i, 0, lambda s: torch.zeros_like(x)))
        assert ours_signal == pytest.approx(signal, rel=1e-5)
