"""Shared fixtures: a small phantom dataset and the shipped tiny weights."""
from pathlib import Path

import pytest

from augpaint_fast.cli import SHIPPED_WEIGHTS
from augpaint_fast.phantom import make_phantom


@pytest.fixture(scope="session")
def phantom_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phantom")
    make_phantom(root, n=3, seed=7, size=64, progress=False)
    return root


@pytest.fixture(scope="session")
def weights() -> Path:
    return SHIPPED_WEIGHTS
