"""``setup=`` callables of the sample rows of tests/test_bad_inputs.py (each gets the placeholder mapping)."""
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from augpaint_fast.cli.main import main

SAMPLE = ["--steps", "2", "--n", "1"]


def _copy_with_labels(places: dict, name: str, change) -> None:
    """{tmp}/<name>: a copy of {data} whose labels are ``change(pixels)``."""
    root = Path(places["tmp"]) / name
    shutil.copytree(places["data"], root)
    for label in sorted((root / "labels").glob("*.png")):
        Image.fromarray(change(np.array(Image.open(label)))).save(label)


def sampled_then_other_data(places: dict) -> None:
    """{tmp}/out sampled from {data}; {tmp}/other: {data} with one pixel of each label changed."""
    assert main(["sample", "--data", places["data"], "--weights", places["weights"], "--out",
                 f"{places['tmp']}/out", *SAMPLE]) == 0

    def one_pixel(pixels):
        pixels[0, 0] = 2 if pixels[0, 0] == 1 else 1
        return pixels

    _copy_with_labels(places, "other", one_pixel)


def all_labels_empty(places: dict) -> None:
    """{tmp}/empty: {data} with every label all background."""
    _copy_with_labels(places, "empty", np.zeros_like)
