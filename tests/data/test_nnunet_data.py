"""nnU-Net v2 raw datasets as --data: made here (3 small two-channel volumes), run through pipeline --labelled 1."""
import json

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
pytest.importorskip("monai")

from augpaint_fast.assets import SHIPPED_WEIGHTS
from augpaint_fast.cli.main import main  # noqa: E402
from augpaint_fast.data import Dataset, NiftiOptions  # noqa: E402
from augpaint_fast.data.dataset_export import export_dataset  # noqa: E402
from augpaint_fast.errors import AugPaintError  # noqa: E402


def _volume(seed: int, size: int = 64, depth: int = 3):
    """A bright disc (label 1) and a square (label 2) on a noisy background, in every slice."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    label = np.zeros((size, size), np.uint8)
    cy, cx = rng.integers(18, 46, 2)
    label[(yy - cy) ** 2 + (xx - cx) ** 2 < 100] = 1
    label[4 + seed:16 + seed, 40:52] = 2
    image = label * 80.0 + rng.normal(100, 5, (size, size))
    return (np.repeat(image[:, :, None], depth, 2).astype(np.float32),
            np.repeat(label[:, :, None], depth, 2))


def _nnunet(root, cases, labels=None):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for k, case in enumerate(cases):
        image, label = _volume(k)
        affine = np.diag([0.8, 0.8, 2.5, 1.0])
        nib.save(nib.Nifti1Image(image, affine), root / "imagesTr" / f"{case}_0000.nii.gz")
        nib.save(nib.Nifti1Image(-image, affine), root / "imagesTr" / f"{case}_0001.nii.gz")  # a second channel
        nib.save(nib.Nifti1Image(label, affine), root / "labelsTr" / f"{case}.nii.gz")
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "T1", "1": "inverted"}, "labels": labels or {"background": 0, "disc": 1, "square": 2},
        "numTraining": len(cases), "file_ending": ".nii.gz"}))
    return root


def test_an_nnunet_raw_dataset_opens_one_file_per_case_and_picks_the_channel(tmp_path):
    root = _nnunet(tmp_path / "Dataset001_Toy", ["toy_000", "toy_001"])
    ds = Dataset.open(root)
    assert sorted({it.id.rsplit("_s", 1)[0] for it in ds.labelled}) == ["toy_000", "toy_001"]
    assert len(ds.labelled) == 6  # 2 volumes x 3 slices
    first = ds.load(ds.labelled[0]).image
    ds1 = Dataset.open(root, nifti=NiftiOptions(channel=1))
    second = ds1.load(ds1.labelled[0]).image
    assert np.corrcoef(first.ravel(), second.ravel())[0, 1] < -0.9  # channel 1 is the inverted image


@pytest.mark.parametrize("labels", [{"background": 0, "disc": 1, "square": 2},  # nnU-Net v2: name -> id
                                    {"0": "background", "1": "disc", "2": "square"}])  # MSD: "id" -> name
def test_dataset_json_labels_name_the_classes_and_export_keeps_them(tmp_path, labels):
    root = _nnunet(tmp_path / "Dataset001_Toy", ["toy_000"], labels)
    ds = Dataset.open(root)
    assert ds.class_names == {1: "disc", 2: "square"}
    export_dataset([], [root], "nnunet", tmp_path / "raw", progress=False)
    meta = json.loads((tmp_path / "raw" / "Dataset501_AugPaint" / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "disc": 1, "square": 2}


@pytest.mark.parametrize("labels, fragment", [
    ({"background": 0, "disc": 1}, "label value 2, which dataset.json does not declare (0 background, 1 disc)"),
    ({"background": 0, "disc": 1, "square": 3}, "label ids [0, 1, 3] must be the consecutive integers"),
    ({"background": 0, "whole": [1, 2]}, "region-based label 'whole' [1, 2] is not supported"),
    ({"background": 0, "disc": 1, "square": 2, "ignore": 3}, "\"ignore\" label"),
])
def test_dataset_json_labels_the_project_cannot_honour_are_refused_in_one_line(tmp_path, labels, fragment):
    root = _nnunet(tmp_path / "Dataset001_Toy", ["toy_000"], labels)
    with pytest.raises(AugPaintError, match=None) as info:
        ds = Dataset.open(root)
        ds.validate()
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow
def test_pipeline_runs_end_to_end_on_nnunet_raw_datasets(tmp_path):
    data = _nnunet(tmp_path / "Dataset001_Toy", ["toy_000", "toy_001", "toy_002"])
    test = _nnunet(tmp_path / "Dataset002_ToyTest", ["test_000"])
    out = tmp_path / "run"
    assert main(["pipeline", "--data", str(data), "--test", str(test), "--out", str(out), "--labelled", "1",
                 "--splits", "1", "--methods", "augpaint", "--weights", str(SHIPPED_WEIGHTS), "--n", "1",
                 "--steps", "2", "--seg-epochs", "1", "--seg-channels", "4", "--budget", "epochs"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert "augpaint" in {r["method"] for r in results["summary"]}
    assert all(0.0 <= r["dice"] <= 1.0 for r in results["runs"])


def _pairs_of(out, root, flip):
    """A generated folder whose pairs are the source slices themselves (flipped as ``flip`` says), recorded as
    ``augpaint-fast sample`` records volume slices."""
    from augpaint_fast.core.masks import apply_flip
    from augpaint_fast.data import OutputWriter

    ds = Dataset.open(root)
    with OutputWriter(out, {"test": 1}) as w:
        for item in ds.labelled:
            s = ds.load(item)
            rec = {"source": item.id, "source_image": str(item.image_path), "source_label": str(item.label_path),
                   "k": 0, "flipped": list(flip), "slice": {"index": item.slice_index, "axis": 2, "channel": None,
                                                            "window": None}}
            w.write_pair(f"{item.id}_0", apply_flip(s.image, flip), apply_flip(s.label, flip), rec)
    return out


def test_export_restacks_generated_slices_into_the_source_volumes_grid(tmp_path):
    root = _nnunet(tmp_path / "Dataset001_Toy", ["toy_000", "toy_001"])
    samples = _pairs_of(tmp_path / "samples", root, (False, True))
    assert main(["export-dataset", "--samples", str(samples), "--real", str(root), "--file-ending", ".nii.gz",
                 "--out", str(tmp_path / "raw"), "--dataset-id", "3", "--name", "Back"]) == 0
    out = tmp_path / "raw" / "Dataset003_Back"
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["file_ending"] == ".nii.gz" and meta["numTraining"] == 4
    assert meta["labels"] == {"background": 0, "disc": 1, "square": 2}
    for case in ("toy_000", "toy_001"):
        src_img = nib.load(root / "imagesTr" / f"{case}_0000.nii.gz")
        src_lab = np.asarray(nib.load(root / "labelsTr" / f"{case}.nii.gz").dataobj)
        for name in (f"aug_{case}_0", f"real_{case}"):
            img = nib.load(out / "imagesTr" / f"{name}_0000.nii.gz")
            lab = nib.load(out / "labelsTr" / f"{name}.nii.gz")
            assert np.allclose(img.affine, src_img.affine) and np.allclose(lab.affine, src_img.affine)
            assert img.header.get_zooms() == src_img.header.get_zooms()
            assert np.array_equal(np.asarray(lab.dataobj), src_lab)  # un-flipped, un-rotated, same grid
            x, y = np.asarray(img.dataobj), np.asarray(src_img.dataobj)
            lo, hi = np.percentile(y, [0.5, 99.5])
            inside = (y > lo) & (y < hi)
            assert np.abs(x - y)[inside].max() < (hi - lo) / 100  # 8-bit PNG round trip of the slices
    # the export is itself a dataset the reader takes back, class names included
    back = Dataset.open(out)
    assert back.class_names == {1: "disc", 2: "square"} and len(back.labelled) == 4 * 3


def test_export_of_pairs_sampled_from_2d_images_as_volumes_is_refused(tmp_path):
    root = _nnunet(tmp_path / "Dataset001_Toy", ["toy_000"])
    samples = _pairs_of(tmp_path / "samples", root, (False, False))
    manifest = samples / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({k: v for k, v in json.loads(line).items() if k != "slice"}) + "\n"
                                for line in manifest.read_text().splitlines()))
    with pytest.raises(AugPaintError, match='has no "slice"'):
        export_dataset([samples], [], "nnunet", tmp_path / "raw", file_ending=".nii.gz", progress=False)


@pytest.mark.slow
def test_sample_records_volume_slices_so_export_restacks_them(tmp_path):
    root = _nnunet(tmp_path / "Dataset001_Toy", ["toy_000"])
    samples = tmp_path / "samples"
    assert main(["sample", "--data", str(root), "--out", str(samples), "--weights", str(SHIPPED_WEIGHTS),
                 "--n", "2", "--steps", "2"]) == 0
    records = [json.loads(line) for line in (samples / "manifest.jsonl").read_text().splitlines()]
    assert sorted(r["slice"]["index"] for r in records) == [0, 0, 1, 1, 2, 2]
    export_dataset([samples], [], "nnunet", tmp_path / "raw", file_ending=".nii.gz", progress=False)
    src = nib.load(root / "imagesTr" / "toy_000_0000.nii.gz")
    for k in (0, 1):
        img = nib.load(tmp_path / "raw" / "Dataset501_AugPaint" / "imagesTr" / f"aug_toy_000_{k}_0000.nii.gz")
        assert img.shape == src.shape and np.allclose(img.affine, src.affine)
