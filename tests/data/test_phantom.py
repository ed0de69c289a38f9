"""Phantom set: determinism, independence from n, content."""
import numpy as np
from PIL import Image

from augpaint_fast.data import Dataset
from augpaint_fast.data.phantom import make_phantom


def test_phantom_deterministic_and_independent_of_n(tmp_path):
    a = make_phantom(tmp_path / "a", 3, seed=7, unlabelled=1, progress=False)
    b = make_phantom(tmp_path / "b", 5, seed=7, progress=False)
    c = make_phantom(tmp_path / "c", 3, seed=8, progress=False)
    assert [p.name for p in a.images] == ["phantom_0000.png", "phantom_0001.png", "phantom_0002.png"]
    assert a.unlabelled[0].name == "phantom_u0000.png" and len(b.images) == 5
    for i in range(3):
        assert a.images[i].read_bytes() == b.images[i].read_bytes()
        assert a.labels[i].read_bytes() == b.labels[i].read_bytes()
    assert a.images[0].read_bytes() != c.images[0].read_bytes()
    assert a.unlabelled[0].read_bytes() != a.images[0].read_bytes()
    again = make_phantom(tmp_path / "a2", 3, seed=7, progress=False)
    assert [p.read_bytes() for p in again.images] == [p.read_bytes() for p in a.images]


def test_phantom_content(tmp_path):
    res = make_phantom(tmp_path / "p", 12, seed=0, size=64, classes=3, progress=False)
    ds = Dataset.open(tmp_path / "p")
    assert len(ds.labelled) == 12
    summary = ds.validate()
    assert summary.classes == [1, 2, 3]
    assert sum(res.class_counts) < 3 * 12  # some images lack some organs
    img = np.asarray(Image.open(res.images[0]))
    assert img.dtype == np.uint8 and img.ndim == 2 and img.shape == (64, 64)
    assert len(np.unique(img)) > 50  # textured, not flat
    # not trivially thresholdable: organ and tissue intensity ranges overlap
    s = ds.load(ds.labelled[0])
    body = s.image[0] > -0.6
    for k in np.unique(s.label)[1:]:
        organ = s.image[0][s.label == k]
        tissue = s.image[0][body & (s.label == 0)]
        assert organ.min() < tissue.max() and organ.max() > tissue.min()


def test_phantom_many_classes_fast(tmp_path):
    res = make_phantom(tmp_path / "q", 6, seed=1, size=32, classes=6, progress=False)
    labs = np.stack([np.asarray(Image.open(p)) for p in res.labels])
    assert labs.max() <= 6 and len(np.unique(labs)) >= 5
