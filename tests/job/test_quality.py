"""Quality figures (augpaint_fast.job.quality) on arrays with known answers and on real sample runs."""
import math

import numpy as np
import pytest

from augpaint_fast.errors import AugPaintError
from augpaint_fast.job.generate import SampleOptions, run_sampling
from augpaint_fast.job.quality import known_region_psnr, mean_abs_diff_grey, outside_diversity, run_quality


def test_array_functions_have_the_expected_values():
    src = np.zeros((3, 4, 4), np.float32)
    known = np.zeros((4, 4), bool)
    known[:2] = True
    sample = src.copy()
    sample[:, :2] += 0.02  # inside: mse 4e-4 -> 10 log10(4 / 4e-4) = 40 dB
    sample[:, 2:] = 1.0  # outside: ignored by the PSNR
    assert known_region_psnr(sample, src, known) == pytest.approx(40.0)
    assert known_region_psnr(src, src, known) == math.inf
    other = sample.copy()
    other[:, 2:] = 0.6  # 0.4 on [-1, 1] = 51 grey levels outside
    assert outside_diversity([sample, other], known) == pytest.approx(0.4 * 127.5)
    assert mean_abs_diff_grey(sample, other) == pytest.approx((0.2 * 127.5, 0.4 * 127.5))
    with pytest.raises(ValueError):
        known_region_psnr(sample, src, np.zeros((4, 4), bool))


def test_run_quality_on_a_sampling_run(phantom_data, weights, tmp_path):
    """Known-region PSNR in the range test_generate pins (> 24 dB), samples of one source differ outside, a run
    compared with itself differs by nothing."""
    opts = SampleOptions(n=2, steps=5, seed=1, flip="random")
    run_sampling(phantom_data, weights, tmp_path / "a", opts, progress=False)
    q = run_quality(tmp_path / "a", reference=tmp_path / "a")
    assert q.samples == 6 and q.sources == 3
    assert q.known_psnr_min_db > 24 and q.known_psnr_db >= q.known_psnr_min_db
    assert q.mad_to_reference_grey == 0 and q.max_diff_to_reference_grey == 0
    assert math.isnan(q.diversity_grey) or q.diversity_grey > 1
    assert set(q.to_dict()) >= {"known_psnr_db", "diversity_grey", "mad_to_reference_grey"}
    with pytest.raises(AugPaintError, match="not a sample run"):
        run_quality(tmp_path)
