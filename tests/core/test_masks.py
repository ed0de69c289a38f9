"""Known masks from labels (DESIGN.md §2): 1 = known."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from augpaint_fast.core import masks
from augpaint_fast.errors import AugPaintError


@st.composite
def labels(draw):
    h = draw(st.integers(1, 6)) * 4
    w = draw(st.integers(1, 6)) * 4
    return draw(arrays(np.int64, (h, w), elements=st.integers(0, 3)))


@settings(max_examples=150, deadline=None)
@given(label=labels(), mode=st.sampled_from(masks.MASK_MODES), margin=st.integers(0, 3))
def test_every_labelled_pixel_is_known_at_latent_size(label, mode, margin):
    latent = masks.to_latent(masks.known_mask(label, mode, margin), 4).numpy()
    upsampled = np.kron(latent, np.ones((4, 4)))
    assert np.all(upsampled[label > 0] == 1)
    assert set(np.unique(latent)) <= {0.0, 1.0}


@settings(max_examples=100, deadline=None)
@given(label=labels())
def test_box_mask_is_union_of_class_bounding_boxes(label):
    m = masks.known_mask(label, "box")
    expected = np.zeros_like(m)
    for cls in range(1, 4):
        ys, xs = np.nonzero(label == cls)
        if len(ys):
            expected[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = 1
    assert np.array_equal(m, expected)


def test_component_mode_boxes_each_blob():
    label = np.zeros((16, 16), np.int64)
    label[1:3, 1:3] = 1
    label[10:12, 12:15] = 1
    box = masks.known_mask(label, "box")
    comp = masks.known_mask(label, "component")
    assert box.sum() == 11 * 14 and comp.sum() == 4 + 6
    assert masks.label_boxes(label, "component") == [(1, 3, 1, 3), (10, 12, 12, 15)]


def test_margin_is_clipped_to_image():
    label = np.zeros((8, 8), np.int64)
    label[0, 0] = 2
    assert masks.label_boxes(label, "box", margin=2) == [(0, 3, 0, 3)]


def test_label_mode_is_the_shape():
    label = np.zeros((8, 8), np.int64)
    label[2, 2] = label[5, 6] = 1
    assert masks.known_mask(label, "label").sum() == 2


def test_empty_label_gives_empty_mask():
    assert masks.known_mask(np.zeros((8, 8), np.int64)).sum() == 0


def test_max_pool_marks_a_cell_known_if_any_pixel_is():
    m = np.zeros((8, 8), np.float32)
    m[5, 2] = 1
    lat = masks.to_latent(m, 4)
    assert lat.tolist() == [[0, 0], [1, 0]]
    batched = masks.to_latent(torch.from_numpy(np.stack([m, 1 - m]))[:, None], 4)
    assert batched.shape == (2, 1, 2, 2)


def test_bad_mode_margin_and_size_are_refused():
    with pytest.raises(AugPaintError, match="mask mode"):
        masks.known_mask(np.zeros((4, 4), np.int64), "circle")
    with pytest.raises(AugPaintError, match="margin"):
        masks.known_mask(np.zeros((4, 4), np.int64), "box", -1)
    with pytest.raises(AugPaintError, match="divisible"):
        masks.to_latent(np.zeros((6, 8)), 4)


def test_flip_moves_image_and_label_together():
    label = np.zeros((4, 6), np.int64)
    label[0, 0] = 1
    image = np.zeros((3, 4, 6), np.float32)
    image[:, 0, 0] = 1
    flip = masks.flip_for("both", seed=0, uid=1)
    assert flip == (True, True)
    fl, fi = masks.apply_flip(label, flip), masks.apply_flip(image, flip)
    assert fl[3, 5] == 1 and np.all(fi[:, 3, 5] == 1) and fl.flags.c_contiguous


def test_random_flip_is_reproducible_and_varied():
    draws = [masks.flip_for("random", 5, uid) for uid in range(64)]
    assert draws == [masks.flip_for("random", 5, uid) for uid in range(64)]
    assert len(set(draws)) == 4
    assert masks.flip_for("none", 5, 3) == (False, False)
