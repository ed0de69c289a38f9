"""The hard phantom: deterministic, varying anatomy and presence, overlapping intensities; the default style
unchanged byte for byte."""
import hashlib

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import label as components

from augpaint_fast.cli.main import main
from augpaint_fast.data import Dataset
from augpaint_fast.errors import AugPaintError
from augpaint_fast.data.phantom import make_phantom

# sha256 over the PNG bytes of make_phantom(n=2, seed=7, size=64, classes=3, unlabelled=1): images, labels,
# unlabelled; recorded from the default style before the hard style existed (the demo's data must not change)
DEFAULT_GOLDEN = "9be5d7590ca12fb08a42211f26f3a4069e46c4e6872aa142602335acbcd6012f"


def test_default_style_is_unchanged(tmp_path):
    r = make_phantom(tmp_path / "d", n=2, seed=7, size=64, classes=3, unlabelled=1, progress=False)
    h = hashlib.sha256()
    for p in r.images + r.labels + r.unlabelled:
        h.update(p.read_bytes())
    assert h.hexdigest() == DEFAULT_GOLDEN


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard")
    make_phantom(root, n=16, seed=0, size=64, classes=5, style="hard", progress=False)
    return root


def test_hard_is_deterministic_and_differs_from_default(hard, tmp_path):
    again = make_phantom(tmp_path / "a", n=3, seed=0, size=64, classes=5, style="hard", unlabelled=1, progress=False)
    for p in again.images + again.labels:
        assert p.read_bytes() == (hard / p.parent.name / p.name).read_bytes()
    default = make_phantom(tmp_path / "d", n=1, seed=0, size=64, progress=False)
    assert default.images[0].read_bytes() != again.images[0].read_bytes()
    assert again.unlabelled[0].read_bytes() != again.images[0].read_bytes()


def test_hard_content_varies_between_cases(hard):
    ds = Dataset.open(hard)
    assert ds.validate().classes == [1, 2, 3, 4, 5]
    labels = np.stack([np.asarray(Image.open(it.label_path)) for it in ds.labelled])
    present = np.stack([(labels == k).any((1, 2)) for k in range(1, 6)], 1)
    assert 0 < (~present).sum() < present.size * 0.4  # organs are sometimes missing, at least one is there
    assert present.any(1).all()
    kidneys = [components(lab == 3)[1] for lab in labels if (lab == 3).any()]
    assert 1 in kidneys and 2 in kidneys  # one or two kidneys
    liver_centres = np.array([np.argwhere(lab == 1).mean(0) for lab in labels if (lab == 1).any()])
    assert liver_centres.std(0).max() > 1.0  # the liver moves (pixels) between cases
    areas = np.array([(lab == 1).sum() for lab in labels if (lab == 1).any()])
    assert areas.max() > 1.5 * areas.min()
    # overlapping intensities: the liver's and spleen's grey levels overlap, and each overlaps the tissue's
    s = ds.load(ds.labelled[int(np.argmax(present[:, 0] & present[:, 1]))])
    img, lab = s.image[0], s.label
    liver, spleen = img[lab == 1], img[lab == 2]
    tissue = img[(lab == 0) & (img > -0.5)]
    assert liver.min() < spleen.max() and spleen.min() < liver.max()
    assert liver.min() < tissue.max() and tissue.min() < liver.max()


def test_hard_options(tmp_path, capsys):
    assert main(["make-phantom", "--style", "hard", "--out", str(tmp_path / "h"), "--n", "2", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert "hard phantom" in out and "5 classes" in out
    r = make_phantom(tmp_path / "h3", n=6, seed=1, size=32, classes=2, style="hard", progress=False)
    assert max(np.asarray(Image.open(p)).max() for p in r.labels) <= 2
    with pytest.raises(AugPaintError, match="1..5 classes"):
        make_phantom(tmp_path / "x", n=1, seed=0, classes=6, style="hard", progress=False)
