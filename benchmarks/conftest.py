"""Collect ``bench_*.py`` here, so ``pytest benchmarks/ --benchmark-only`` runs every suite (pytest's default
pattern is ``test_*.py``; files named on the command line are collected by pytest itself)."""
import os

import pytest


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_benchmark_update_machine_info(config, machine_info):
    """Label the run in its --benchmark-json (``BENCH_NOTE``, e.g. "busy shared 2-core VM"): a saved baseline says
    where and under what load it was recorded."""
    machine_info["note"] = os.environ.get("BENCH_NOTE", "")
