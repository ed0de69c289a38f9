"""DDIM schedule (DESIGN.md §3)."""
import numpy as np
import pytest

from augpaint_fast.errors import AugPaintError
from augpaint_fast.core.schedule import COL_DIR, COL_SIGMA, alphas_cumprod, ddim_schedule


def test_abar_matches_ldm_schedule():
    abar = alphas_cumprod()
    betas = np.linspace(0.0015**0.5, 0.0195**0.5, 1000) ** 2
    assert abar[0] == pytest.approx(1 - 0.0015)
    assert abar[-1] == pytest.approx(np.prod(1 - betas))
    assert np.all(np.diff(abar) < 0)


def test_fifty_steps_use_compvis_uniform_timesteps():
    s = ddim_schedule(50, eta=1.0)
    assert s.timesteps[0] == 981 and s.timesteps[-1] == 1 and len(s.timesteps) == 50
    assert np.all(np.diff(s.timesteps) == -20)
    abar = alphas_cumprod()
    assert s.a_t[0] == abar[981] and s.a_prev[0] == abar[961]
    assert s.a_prev[-1] == 1.0 and s.sigma[-1] == 0.0


def test_sigma_is_ddim_eq16_and_scales_with_eta():
    s1, s0, sh = ddim_schedule(10, 1.0), ddim_schedule(10, 0.0), ddim_schedule(10, 0.5)
    j = 3
    expected = np.sqrt((1 - s1.a_prev[j]) / (1 - s1.a_t[j])) * np.sqrt(1 - s1.a_t[j] / s1.a_prev[j])
    assert s1.sigma[j] == pytest.approx(expected)
    assert np.all(s0.sigma == 0) and sh.sigma[j] == pytest.approx(0.5 * expected)


def test_table_columns():
    s = ddim_schedule(50, 1.0)
    t = s.table().numpy()
    assert t.shape == (50, 8) and t.dtype == np.float32
    assert t[5, COL_SIGMA] == pytest.approx(s.sigma[5])
    assert t[5, COL_DIR] == pytest.approx(np.sqrt(1 - s.a_prev[5] - s.sigma[5] ** 2))


@pytest.mark.parametrize("steps,eta", [(0, 1.0), (1001, 1.0), (50, -0.1), (50, float("nan"))])
def test_bad_settings_are_refused(steps, eta):
    with pytest.raises(AugPaintError):
        ddim_schedule(steps, eta)


def test_steps_that_do_not_divide_t_use_trailing_spacing_from_the_top():
    assert list(ddim_schedule(3).timesteps) == [999, 666, 332]
    assert list(ddim_schedule(1).timesteps) == [999]
    assert list(ddim_schedule(2).timesteps) == [999, 499]  # uniform would start at t = 501
    assert list(ddim_schedule(1000).timesteps) == list(range(999, -1, -1))  # uniform would index t = 1000


def test_every_step_count_starts_at_the_top_with_distinct_descending_steps():
    abar = alphas_cumprod()
    for steps in range(1, 1001):
        s = ddim_schedule(steps)
        assert len(s.timesteps) == steps
        assert abar[s.timesteps[0]] < 0.01, steps
        assert np.all(np.diff(s.timesteps) < 0) and s.timesteps[-1] >= 0, steps


@pytest.mark.parametrize("steps", [4, 5, 8, 10, 20, 25, 40, 50, 100, 125, 200, 250, 500])
def test_divisors_keep_compvis_uniform_spacing(steps):
    c = 1000 // steps
    assert list(ddim_schedule(steps).timesteps) == list(range(1000 - c + 1, 0, -c))
