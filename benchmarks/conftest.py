"""Collect ``bench_*.py`` here, so ``pytest benchmarks/ --benchmark-only`` runs every suite (pytest's default
pattern is ``test_*.py``; files named on the command line are collected by pytest itself)."""
import pytest


def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
