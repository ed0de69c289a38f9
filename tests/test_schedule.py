"""DDIM schedule (DESIGN.md §3)."""
import numpy as np
import pytest

from augpaint_fast.errors import AugPaintError
from augpaint_fast.schedule import COL_DIR, COL_SIGMA, alphas_cumprod, ddim_schedule


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


def test_steps_that_do_not_divide_t_still_give_s_calls():
    s = ddim_schedule(3)
    assert list(s.timesteps) == [667, 334, 1]
