"""The one atomic-write helper (augpaint_fast.atomic)."""
import os

import pytest

from augpaint_fast.atomic import atomic_write, atomic_write_bytes, atomic_write_text


def test_writes_whole_files_with_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "sub" / "a.txt", "hello")
    finally:
        os.umask(old)
    path = tmp_path / "sub" / "a.txt"
    assert path.read_text() == "hello"
    assert os.stat(path).st_mode & 0o777 == 0o640  # 0666 less the umask, not mkstemp's 0600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write_bytes(path, b"old")

    def half(tmp):
        tmp.write_bytes(b"ne")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, half)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_writer_that_replaces_the_temporary_still_gets_the_umask_mode(tmp_path):
    """safetensors' save_file writes a private file and renames it over the temporary (issue 14, item 12)."""
    import torch
    from safetensors.torch import save_file

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "model.safetensors", lambda tmp: save_file({"w": torch.zeros(2)}, str(tmp)))
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "model.safetensors").st_mode & 0o777 == 0o644
