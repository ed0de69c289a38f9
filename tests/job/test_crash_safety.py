"""kill -9 at any moment: a sampling process is SIGKILLed at several points (inside an atomic file write, between
a pair's two files, between its files and its manifest line, half-way through a manifest line, in the middle of
a batch's sampling loop, while writing the preview, and from outside at an arbitrary moment); each rerun
resumes, and the final folder is the one an uninterrupted run writes, byte for byte, with one manifest line
per pair and no temporary file left.

Each killed run is a forked child of the test process that installs its kill point, runs the CLI's ``sample``
and is SIGKILLed (by itself at the kill point, or by the test); forking keeps the test fast (no interpreter or
torch start-up per run). The module runs torch at one thread (the ``one_torch_thread`` fixture): a child forked
after a multi-threaded oneDNN call would hang in its own first one.
"""
import json
import os
import signal
import time

import pytest

from augpaint_fast.cli.main import main
from augpaint_fast.data.writer import OutputWriter
from augpaint_fast.engines.torch_engine import TorchEngine

N, STEPS, BATCH = 3, 3, 2  # 3 phantoms x 3 = 9 pairs in 5 batches
KILLED = -signal.SIGKILL


def _args(data, weights, out):
    return ["sample", "--data", str(data), "--weights", str(weights), "--out", str(out), "--n", str(N),
            "--steps", str(STEPS), "--batch-size", str(BATCH), "--seed", "4"]


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_on_call(owner, name, nth, after=False):
    """Patch ``owner.name`` so that its ``nth`` call (1-based) SIGKILLs the process, before or after running."""
    original, calls = getattr(owner, name), [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth and not after:
            _die()
        result = original(*args, **kwargs)
        if calls[0] == nth and after:
            _die()
        return result

    setattr(owner, name, wrapper)


def _torn_manifest_line(nth):
    """The ``nth`` manifest append writes half of its line to disk, then the process dies."""
    original, calls = OutputWriter._append_manifest, [0]

    def append(self, line):
        calls[0] += 1
        if calls[0] != nth:
            return original(self, line)
        with open(self.manifest_path, "ab") as fh:
            fh.write(line.encode()[: len(line) // 2])
            fh.flush()
            os.fsync(fh.fileno())
        _die()

    OutputWriter._append_manifest = append


def _die_inside_the_preview_write():
    """The preview's temporary file is written whole, then the process dies before renaming it."""
    import augpaint_fast.job.preview as preview

    original = preview.atomic_write
    preview.atomic_write = lambda path, write, **kw: original(path, lambda tmp: (write(tmp), _die()), **kw)


def _image_without_label(out):
    return {p.name for p in (out / "images").glob("*.png")} - {p.name for p in (out / "labels").glob("*.png")}


def _files_without_line(out):
    recorded = {json.loads(line)["name"] + ".png" for line in _manifest_lines(out) if line.endswith("}")}
    return {p.name for p in (out / "labels").glob("*.png")} - recorded


# (kill point, how to install it in the child, manifest lines after the kill, what else the kill must leave).
# os.replace calls: run 1 writes run_config.json first, then image and label of each pair; later runs start
# with the first unfinished pair (the order is fixed, so every point below is reached exactly as described).
KILL_POINTS = [
    ("inside an atomic write, temp file complete, not renamed", lambda: _kill_on_call(os, "replace", 4), 1,
     lambda out: list(out.glob("images/.phantom_0000_1.png.*.tmp"))),
    ("between a pair's image and its label", lambda: _kill_on_call(os, "replace", 3, after=True), 2,
     lambda out: _image_without_label(out) == {"phantom_0000_2.png"}),
    ("between a pair's files and its manifest line", lambda: _kill_on_call(os, "replace", 2, after=True), 2,
     lambda out: _files_without_line(out) == {"phantom_0000_2.png"}),
    ("half-way through a manifest line", lambda: _torn_manifest_line(2), 4,
     lambda out: not (out / "manifest.jsonl").read_bytes().endswith(b"\n")),
    ("in the middle of a batch's sampling loop", lambda: _kill_on_call(TorchEngine, "denoiser", 2), 3,
     lambda out: not _image_without_label(out)),
    ("while writing the preview", _die_inside_the_preview_write, 3 * N,
     lambda out: list(out.glob(".preview.png.*.tmp")) and not (out / "preview.png").exists()),
]


def _fork_sample(args, install=None) -> int:
    """Run ``augpaint-fast sample`` in a forked child; its exit status, or -signal if a signal ended it."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            if install is not None:
                install()
            code = main(args)
        finally:
            os._exit(code)
    return _wait(pid)


def _wait(pid, timeout=120.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise TimeoutError(f"sampling child {pid} still running after {timeout} s")


def _manifest_lines(out):
    path = out / "manifest.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def _folder(out) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def uninterrupted(one_torch_thread, phantom_data, weights, tmp_path_factory):
    """The reference run, in this process: it also warms up the imports the forked children then inherit."""
    out = tmp_path_factory.mktemp("uninterrupted")
    assert main(_args(phantom_data, weights, out)) == 0
    return _folder(out)


def _check_final(out, uninterrupted):
    folder = _folder(out)
    assert not [name for name in folder if name.endswith(".tmp")]
    assert folder == uninterrupted  # every file, manifest and preview included, byte for byte
    names = [json.loads(line)["name"] for line in _manifest_lines(out)]
    assert len(names) == len(set(names)) == 3 * N


@pytest.mark.slow
def test_killed_at_every_kill_point_in_turn_the_reruns_finish_the_same_set(phantom_data, weights, tmp_path,
                                                                       uninterrupted):
    out = tmp_path / "out"
    args = _args(phantom_data, weights, out)
    for what, install, lines, left in KILL_POINTS:  # each run resumes what the killed one before it left
        assert _fork_sample(args, install) == KILLED, what
        assert len(_manifest_lines(out)) == lines, what
        assert left(out), what
    assert _fork_sample(args) == 0
    _check_final(out, uninterrupted)


@pytest.mark.slow
def test_killed_from_outside_at_an_arbitrary_moment_the_rerun_finishes_the_same_set(phantom_data, weights,
                                                                                  tmp_path, uninterrupted):
    out = tmp_path / "out"
    args = _args(phantom_data, weights, out)
    pid = os.fork()
    if pid == 0:
        code = 99
        try:  # slowed down a little after each recorded pair, so the run is surely still going when killed
            append = OutputWriter._append_manifest
            OutputWriter._append_manifest = lambda self, line: (append(self, line), time.sleep(0.05))
            code = main(args)
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120
    while len(_manifest_lines(out)) < 3 and time.monotonic() < deadline:  # mid-run: some pairs written
        time.sleep(0.001)
    os.kill(pid, signal.SIGKILL)
    assert _wait(pid) == KILLED
    assert 3 <= len(_manifest_lines(out)) < 3 * N + 1
    assert _fork_sample(args) == 0
    _check_final(out, uninterrupted)
