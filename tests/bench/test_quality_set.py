"""Quality metrics on constructed images, and the quality set built from phantoms and trained weights."""
import pytest
import torch

from augpaint_fast.bench.quality_set import QualitySet, known_psnr, mad_grey


def test_known_psnr_looks_only_inside_the_known_region():
    source = torch.zeros(2, 3, 4, 4)
    sample = source.clone()
    sample[:, :, :, 2:] = 1.0  # wrong outside the known half: must not count
    sample[1, :, 0, 0] = 0.2  # one known pixel off by 0.2 in sample 1
    known = torch.zeros(2, 1, 4, 4)
    known[:, :, :, :2] = 1
    psnr = known_psnr(sample, source, known)
    assert psnr[0] == pytest.approx(126.02, abs=0.01)  # identical: mse clamped at 1e-12
    mse = 3 * 0.04 / (3 * 8)
    assert psnr[1] == pytest.approx(10 * torch.log10(torch.tensor(4 / mse)).item(), rel=1e-5)


def test_mad_is_in_grey_levels():
    assert mad_grey(torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 2 / 255)) == pytest.approx(1.0, rel=1e-5)


def test_quality_set_from_phantoms(weights):
    qs = QualitySet.load(weights, sources=2, per_source=2)
    assert qs.x.shape == (4, 3, 64, 64) and qs.mask.shape == (4, 1, 16, 16)
    assert torch.equal(qs.x[0], qs.x[1]) and qs.uids[0] != qs.uids[1]  # two samples of one source
    assert qs.known.sum() > 0 and set(qs.known.unique().tolist()) <= {0.0, 1.0}
    s = qs.scores(qs.x.clone(), qs.x)
    assert s["mad_grey_vs_eager"] == 0 and s["known_psnr_db"] == pytest.approx(126.02)
    assert s["diversity_grey"] == 0  # the two "samples" of a source are the same image here
    moved = qs.x.clone()
    moved[1::2] += 2 / 255 * (1 - qs.known[1::2])  # second sample of each source: 1 grey level brighter outside
    assert qs.scores(moved, qs.x)["diversity_grey"] == pytest.approx(1.0, rel=1e-4)
