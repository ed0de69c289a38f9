"""NIfTI volumes cut into slices: 3-D, 4-D channel choice, CT window, label checks."""
import nibabel as nib
import numpy as np
import pytest

from augpaint_fast.data import Dataset, NiftiOptions
from augpaint_fast.errors import AugPaintError


def _save(arr, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))


def _label_vol(shape=(10, 12, 4)):
    lab = np.zeros(shape, np.uint8)
    lab[2:5, 3:8, 1] = 1
    lab[6:9, 1:4, 2] = 2
    return lab


def test_nifti_3d_slices(tmp_path):
    rng = np.random.default_rng(0)
    vol = rng.normal(100, 20, (10, 12, 4)).astype(np.float32)
    _save(vol, tmp_path / "ds/images/case1.nii.gz")
    _save(_label_vol(), tmp_path / "ds/labels/case1.nii.gz")
    ds = Dataset.open(tmp_path / "ds")
    assert [i.id for i in ds.labelled] == ["case1_s000", "case1_s001", "case1_s002", "case1_s003"]
    assert [i.slice_index for i in ds.labelled] == [0, 1, 2, 3]
    s = ds.load(ds.labelled[1])
    # slice of [X, Y, Z] along axis 2 is [X, Y], rotated for display -> [Y, X]
    assert s.image.shape == (3, 12, 10) and s.label.shape == (12, 10)
    assert np.array_equal(s.label, np.rot90(_label_vol()[:, :, 1]))
    assert s.image.min() >= -1 and s.image.max() <= 1
    # per-volume percentile normalisation: 0.5 / 99.5 percentiles of the whole volume map to -1 / 1
    lo, hi = np.percentile(vol, [0.5, 99.5])
    exp = (np.clip(np.rot90(vol[:, :, 1]), lo, hi) - lo) / (hi - lo) * 2 - 1
    np.testing.assert_allclose(s.image[0], exp, atol=1e-5)
    assert ds.validate().classes == [1, 2]
    ds0 = Dataset.open(tmp_path / "ds", nifti=NiftiOptions(axis=0))
    assert len(ds0.labelled) == 10 and ds0.load(ds0.labelled[3]).image.shape == (3, 4, 12)


def test_nifti_4d_channel_and_ct_window(tmp_path):
    vol = np.zeros((8, 8, 3, 4), np.float32)
    for c in range(4):
        vol[..., c] = c * 100 + np.arange(8)[:, None, None] * 10 - 40  # channel c: c*100-40 .. c*100+30
    _save(vol, tmp_path / "ds/images/b.nii")
    _save(np.zeros((8, 8, 3), np.uint8), tmp_path / "ds/labels/b.nii")
    with pytest.raises(AugPaintError, match="4 channels; choose one"):
        Dataset.open(tmp_path / "ds").load(Dataset.open(tmp_path / "ds").labelled[0])
    ds = Dataset.open(tmp_path / "ds", nifti=NiftiOptions(channel=0, window=(0.0, 40.0)))
    img = ds.load(ds.labelled[0]).image
    # window [-20, 20] -> [-1, 1]; channel 0 values -40..30 in steps of 10, along rotated rows' columns
    exp_col = np.clip((np.arange(8) * 10 - 40 + 20) / 40 * 2 - 1, -1, 1)
    np.testing.assert_allclose(np.rot90(np.tile(exp_col[:, None], (1, 8)))[None].repeat(3, 0), img, atol=1e-6)
    ds2 = Dataset.open(tmp_path / "ds", nifti=NiftiOptions(channel=2, window=(200.0, 40.0)))
    img2 = ds2.load(ds2.labelled[0]).image
    np.testing.assert_allclose(img2, img, atol=1e-6)  # channel 2 = channel 0 + 200
    with pytest.raises(AugPaintError, match="channel 7 does not exist"):
        ds3 = Dataset.open(tmp_path / "ds", nifti=NiftiOptions(channel=7))
        ds3.load(ds3.labelled[0])


def test_nifti_shape_mismatch_and_bad_label(tmp_path):
    _save(np.ones((8, 8, 3), np.float32), tmp_path / "ds/images/c.nii.gz")
    _save(np.zeros((8, 7, 3), np.uint8), tmp_path / "ds/labels/c.nii.gz")
    with pytest.raises(AugPaintError, match=r"image volume is 8x8x3 but its label labels/c.nii.gz is 8x7x3"):
        Dataset.open(tmp_path / "ds").validate()
    _save(np.random.default_rng(0).random((8, 8, 3)).astype(np.float32), tmp_path / "ds/labels/c.nii.gz")
    with pytest.raises(AugPaintError, match="labels/c.nii.gz has non-integer values"):
        Dataset.open(tmp_path / "ds").validate()


def test_corrupt_nifti(tmp_path):
    (tmp_path / "ds/images").mkdir(parents=True)
    (tmp_path / "ds/labels").mkdir()
    (tmp_path / "ds/images/d.nii.gz").write_bytes(b"not a nifti at all")
    (tmp_path / "ds/labels/d.nii.gz").write_bytes(b"nope")
    with pytest.raises(AugPaintError, match=r"images/d.nii.gz is not a readable NIfTI volume") as e:
        Dataset.open(tmp_path / "ds")
    assert "\n" not in str(e.value)
