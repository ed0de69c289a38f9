"""Shared fixtures: a small phantom dataset and the shipped tiny weights."""
import builtins
import os
from pathlib import Path

import pytest
import torch

# Triton reads TRITON_INTERPRET once, at its import: set it before any test module imports triton (directly or
# through augpaint_fast.models.flops), so the Triton kernels run under the interpreter on a machine without a GPU.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# `sample` and `serve` default to one engine process per core; the tests that are not about workers run (and
# monkeypatch) one engine in their own process, as the tests of --workers ask for N explicitly.
os.environ.setdefault("AUGPAINT_FAST_WORKERS", "1")

from augpaint_fast.assets import SHIPPED_WEIGHTS
from augpaint_fast.data.phantom import make_phantom


@pytest.fixture(scope="session")
def phantom_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("phantom")
    make_phantom(root, n=3, seed=7, size=64, progress=False)
    return root


@pytest.fixture(scope="session")
def weights() -> Path:
    return SHIPPED_WEIGHTS


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch at one thread for a module whose tests fork or compare against other processes.

    Forked children: torch's CPU build runs oneDNN on GNU OpenMP, which cannot run a parallel region in a child
    forked after the parent ran one (the child waits forever at the team barrier); at one thread there is no team.
    Other processes (Ray workers, DataLoader workers) run at one thread: on AVX-512 CPUs oneDNN splits some
    convolutions' reductions by thread count, so a sample is bit-identical only at the same thread count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def no_nncf(monkeypatch):
    """Imports of nncf fail, as without the [int8] extra."""
    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "nncf" or name.startswith("nncf."):
            raise ImportError(f"No module named {name!r}", name=name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
