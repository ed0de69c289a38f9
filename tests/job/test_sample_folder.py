"""One ``sample`` output folder: it belongs to one dataset (a fingerprint in run_config.json) and to one run at a
time (an exclusive lock, released however the run ends, never left behind by a killed one)."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augpaint_fast.cli.main import main
from augpaint_fast.errors import AugPaintError
from augpaint_fast.job.generate import Generator

ROOT = Path(__file__).resolve().parents[2]
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _args(data, weights, out, *extra):
    return ["sample", "--data", str(data), "--weights", str(weights), "--out", str(out), "--steps", "2",
            "--n", "1", *extra]


def _last_error(capsys) -> str:
    return capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]


def _names(out: Path) -> list[str]:
    return [json.loads(line)["name"] for line in (out / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture
def data(phantom_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(phantom_data, root)
    return root


# --- the data is part of the run's settings -----------------------------------------------------------------
def test_same_data_resumes_even_re_encoded_other_data_is_refused(data, weights, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(data, weights, out)) == 0
    config = json.loads((out / "run_config.json").read_text())
    assert config["data"]["sources"] == 3 and len(config["data"]["digest"]) == 32
    label = data / "labels" / "phantom_0001.png"
    pixels = np.array(Image.open(label))
    Image.fromarray(pixels).save(label, compress_level=0)  # other bytes, same pixels: the same data
    capsys.readouterr()
    assert main(_args(data, weights, out)) == 0
    assert "3 already there" in capsys.readouterr().out
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    pixels[0, 0] = 1 if pixels[0, 0] != 1 else 2  # one pixel of one label
    Image.fromarray(pixels).save(label)
    assert main(_args(data, weights, out)) == 2
    err = _last_error(capsys)
    assert err.startswith("augpaint-fast: error: output folder") and "was made with data=" in err, err
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before


def test_partly_empty_labels_are_skipped_and_counted(data, weights, tmp_path, capsys):
    label = data / "labels" / "phantom_0002.png"
    Image.fromarray(np.zeros_like(np.array(Image.open(label)))).save(label)
    assert main(_args(data, weights, tmp_path / "out")) == 0
    assert "2 pair(s) written from 3 source(s)" in capsys.readouterr().out
    assert sorted(_names(tmp_path / "out")) == ["phantom_0000_0", "phantom_0001_0"]


@pytest.mark.parametrize("argv", [["--mask", "blob"], ["--flip", "sideways"]], ids=["mask", "flip"])
def test_mask_and_flip_are_choices(data, weights, tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as exc:  # argparse refuses it before any command runs
        main(_args(data, weights, tmp_path / "out", *argv))
    assert exc.value.code == 2
    assert "invalid choice" in _last_error(capsys)
    assert not (tmp_path / "out").exists()


# --- one run at a time --------------------------------------------------------------------------------------
# A `sample` run whose generation waits until the file argv[1] exists: it holds its folder as long as a test needs.
PAUSED_SAMPLE = """
import sys, time
from pathlib import Path
from augpaint_fast.cli.main import main
from augpaint_fast.job.generate import Generator
go, generate = Path(sys.argv[1]), Generator.generate
def paused(self, *args, **kwargs):
    while not go.exists():
        time.sleep(0.02)
    return generate(self, *args, **kwargs)
Generator.generate = paused
sys.exit(main(sys.argv[2:]))
"""


def _start_paused(argv: list[str], go: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PAUSED_SAMPLE, str(go), *argv], env=CHILD_ENV, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_holder(lock: Path, proc: subprocess.Popen, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if lock.exists() and lock.read_text().startswith("pid "):
            return lock.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"the first run never held {lock}: {proc.communicate()}")


@pytest.mark.slow
def test_a_second_run_into_a_busy_folder_is_refused_naming_the_first(data, weights, tmp_path, capsys):
    out, go = tmp_path / "out", tmp_path / "go"
    argv = _args(data, weights, out, "--n", "2")
    first = _start_paused(argv, go)  # the first run: a child process
    try:
        assert _wait_for_holder(out / ".lock", first).startswith(f"pid {first.pid} on ")
        capsys.readouterr()
        assert main(argv) == 2  # the second run: this process
        last = _last_error(capsys)
        assert last.startswith("augpaint-fast: error: output folder") and f"(pid {first.pid} on " in last, last
        assert not (out / "manifest.jsonl").exists()  # the second one wrote nothing
        go.touch()
        _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
    finally:
        first.kill()
        first.wait()
    names = _names(out)
    assert len(names) == len(set(names)) == 6
    assert (out / ".lock").read_bytes() == b""  # released and emptied: the folder ends as an unlocked run leaves it
    capsys.readouterr()
    assert main(argv) == 0
    assert "6 already there" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("stop", [KeyboardInterrupt, AugPaintError], ids=["interrupt", "error"])
def test_the_lock_is_released_however_a_run_ends(data, weights, tmp_path, capsys, monkeypatch, stop):
    out = tmp_path / "out"

    def fail(self, items, seed, callback=None):
        raise stop("stopped")

    with monkeypatch.context() as m:
        m.setattr(Generator, "generate", fail)
        assert main(_args(data, weights, out)) == (130 if stop is KeyboardInterrupt else 2)
    assert main(_args(data, weights, out)) == 0  # the same process: refused if the first had kept its lock
    assert "3 pair(s) written" in capsys.readouterr().out


@pytest.mark.slow
def test_a_lock_left_by_a_killed_process_does_not_block(data, weights, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    killed = subprocess.run([sys.executable, "-c", "import os, signal, sys\n"
                             "from augpaint_fast.locks import ExclusiveLock\n"
                             "ExclusiveLock(sys.argv[1]).acquire()\n"
                             "os.kill(os.getpid(), signal.SIGKILL)\n", str(out / ".lock")],
                            env=CHILD_ENV, cwd=ROOT, timeout=60)
    assert killed.returncode == -9
    assert (out / ".lock").read_text().startswith("pid ")  # it still names the dead holder
    assert main(_args(data, weights, out)) == 0
    assert "3 pair(s) written" in capsys.readouterr().out
