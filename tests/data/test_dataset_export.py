"""export-dataset: nnU-Net v2 raw layout (file names, dataset.json, label values) and plain folders."""
import json

import numpy as np
import pytest
from PIL import Image

from augpaint_fast.cli.main import main
from augpaint_fast.data import Dataset, OutputWriter, read_image, read_label
from augpaint_fast.data.dataset_export import export_dataset
from augpaint_fast.errors import AugPaintError
from augpaint_fast.data.phantom import make_phantom


def _generated(out, data, n=2, rgb=False):
    ds = Dataset.open(data)
    with OutputWriter(out, {"test": 1}) as w:
        for item in ds.labelled:
            s = ds.load(item)
            img = s.image.copy()
            if rgb:
                img[0] = np.clip(img[0] + 0.3, -1, 1)
            for k in range(n):
                w.write_pair(f"{item.id}_{k}", img, s.label, {"source": item.id, "k": k})
    return out


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    make_phantom(root, n=3, seed=4, size=32, progress=False)
    return root


def test_nnunet_layout_names_json_and_labels(real, tmp_path, capsys):
    samples = _generated(tmp_path / "s", real)
    assert main(["export-dataset", "--samples", str(samples), "--real", str(real), "--format", "nnunet",
                 "--out", str(tmp_path / "raw"), "--dataset-id", "7", "--name", "Phantom",
                 "--label-names", "liver,spleen,vessel"]) == 0
    assert "9 case(s), 3 class(es), greyscale" in capsys.readouterr().out
    root = tmp_path / "raw" / "Dataset007_Phantom"
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "grey"} and meta["file_ending"] == ".png" and meta["numTraining"] == 9
    assert meta["labels"] == {"background": 0, "liver": 1, "spleen": 2, "vessel": 3}
    images = sorted(p.name for p in (root / "imagesTr").iterdir())
    labels = sorted(p.name for p in (root / "labelsTr").iterdir())
    cases = sorted([f"aug_phantom_000{i}_{k}" for i in range(3) for k in range(2)] +
                   [f"real_phantom_000{i}" for i in range(3)])
    assert images == [f"{c}_0000.png" for c in cases] and labels == [f"{c}.png" for c in cases]
    for c in cases:
        img = np.asarray(Image.open(root / "imagesTr" / f"{c}_0000.png"))
        lab = np.asarray(Image.open(root / "labelsTr" / f"{c}.png"))
        assert img.ndim == 2 and img.dtype == np.uint8 and lab.dtype == np.uint8 and lab.shape == img.shape
        assert set(np.unique(lab)) <= {0, 1, 2, 3}
    src = read_label(real / "labels" / "phantom_0001.png")
    assert np.array_equal(np.asarray(Image.open(root / "labelsTr" / "real_phantom_0001.png")), src)
    exact = np.asarray(Image.open(real / "images" / "phantom_0001.png"))
    assert np.array_equal(np.asarray(Image.open(root / "imagesTr" / "real_phantom_0001_0000.png")), exact)
    record = json.loads((root / "augpaint_export.json").read_text())
    assert record["complete"] and record["cases"]["aug_phantom_0000_1"]["record"]["k"] == 1


def test_rgb_folder_format_several_samples_and_rebuild(real, tmp_path):
    a = _generated(tmp_path / "a", real, n=1, rgb=True)
    b = _generated(tmp_path / "b", real, n=1)
    s = export_dataset([a, b], [], "folder", tmp_path / "flat", progress=False)
    assert s.rgb and s.cases == 6
    names = sorted(p.name for p in (tmp_path / "flat" / "images").iterdir())
    assert names[0] == "aug0_phantom_0000_0.png" and names[-1] == "aug1_phantom_0002_0.png"
    assert np.asarray(Image.open(tmp_path / "flat" / "images" / names[-1])).shape == (32, 32, 3)  # grey as RGB
    assert len(Dataset.open(tmp_path / "flat").labelled) == 6
    assert np.allclose(read_image(tmp_path / "flat" / "images" / names[0]), read_image(a / "images" / "phantom_0000_0.png"))
    grey = export_dataset([a], [], "folder", tmp_path / "grey", color="grey", progress=False)
    img = np.asarray(Image.open(tmp_path / "grey" / "images" / "aug_phantom_0000_0.png"))  # one folder: aug_
    assert not grey.rgb and img.ndim == 2
    assert np.abs(img.astype(int) - np.rint((read_image(a / "images" / "phantom_0000_0.png").mean(0) + 1) * 127.5)).max() <= 1
    export_dataset([b], [], "folder", tmp_path / "flat", progress=False)  # rerun, fewer cases: stale files go
    assert len(list((tmp_path / "flat" / "images").iterdir())) == 3
    meta = export_dataset([b], [], "nnunet", tmp_path / "raw", progress=False)
    assert json.loads((meta.root / "dataset.json").read_text())["labels"] == {
        "background": 0, "class_1": 1, "class_2": 2, "class_3": 3}


def test_export_refuses_bad_requests(real, tmp_path):
    b = _generated(tmp_path / "b", real, n=1)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(AugPaintError, match="not an export"):
        export_dataset([b], [], "folder", tmp_path / "taken", progress=False)
    with pytest.raises(AugPaintError, match="label-names"):
        export_dataset([b], [], "nnunet", tmp_path / "o", label_names=["a"], progress=False)
    with pytest.raises(AugPaintError, match="dataset-id"):
        export_dataset([b], [], "nnunet", tmp_path / "o", dataset_id=1000, progress=False)
    with pytest.raises(AugPaintError, match="--classes is 2"):
        export_dataset([b], [], "nnunet", tmp_path / "o", classes=2, progress=False)
