"""``sample --workers N``: N engine processes of one thread write the folder of one engine, byte for byte, also
after a kill -9 and a rerun; a worker's error is one line, a dead worker is named, Ctrl-C stops the workers.

The module runs torch at one thread (``one_torch_thread``): ``--workers 1`` runs at one thread anyway, and the
killed run is a forked child of the test process (see tests/job/test_crash_safety.py).
"""
import os
import signal

import pytest

from augpaint_fast.cli.main import main
from augpaint_fast.data.writer import OutputWriter
from augpaint_fast.errors import AugPaintError
from augpaint_fast.job import workers as workers_mod
from augpaint_fast.job.generate import SampleOptions, work_item, load_sources
from augpaint_fast.job.workers import EngineProcess, default_workers

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N, STEPS, BATCH = 2, 2, 2  # 3 phantoms x 2 = 6 pairs in 3 batches


def _args(data, weights, out, workers, *extra):
    return ["sample", "--data", str(data), "--weights", str(weights), "--out", str(out), "--n", str(N),
            "--steps", str(STEPS), "--batch-size", str(BATCH), "--seed", "3", "--workers", str(workers), *extra]


def _folder(out) -> dict[str, bytes]:
    """Every file of a sampling folder but the lock, by relative path."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


@pytest.fixture(scope="module")
def one_worker(phantom_data, weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("workers") / "one"
    assert main(_args(phantom_data, weights, out, 1)) == 0
    return _folder(out)


@pytest.mark.slow  # starts worker processes
def test_two_workers_write_the_folder_of_one(one_worker, phantom_data, weights, tmp_path, capsys):
    assert main(_args(phantom_data, weights, tmp_path / "two", 2)) == 0
    assert "6 pair(s) written" in capsys.readouterr().out
    two = _folder(tmp_path / "two")
    assert sorted(two) == sorted(one_worker) and len([p for p in two if p.startswith("images/")]) == 6
    assert two == one_worker  # images, labels, manifest (same order), run_config and preview


@pytest.mark.slow  # starts worker processes
def test_kill_9_with_workers_then_rerun_gives_the_same_folder(one_worker, phantom_data, weights, tmp_path):
    out = tmp_path / "killed"
    calls = [0]
    original = OutputWriter.write_pair

    def write_then_die(self, *args, **kwargs):  # dies after the third pair, its workers still busy
        original(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        OutputWriter.write_pair = write_then_die
        main(_args(phantom_data, weights, out, 2))
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert 0 < len(list((out / "images").glob("*.png"))) < 6
    assert main(_args(phantom_data, weights, out, 2)) == 0
    assert _folder(out) == one_worker


@pytest.mark.slow  # starts worker processes
def test_an_error_in_a_worker_is_one_line_and_nothing_is_written(phantom_data, weights, tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(_args(phantom_data, weights, out, 2, "--threads", "2")) == 2  # torch takes no threads option
    err = capsys.readouterr().err.strip().splitlines()  # the progress bars of reading the data, then the error
    assert [line for line in err if "error" in line] == err[-1:] and err[-1].startswith("augpaint-fast: error: ")
    assert "threads" in err[-1]
    assert not list((out / "images").glob("*.png"))


@pytest.mark.slow  # starts worker processes
def test_ctrl_c_stops_the_workers_and_keeps_what_was_written(phantom_data, weights, tmp_path, monkeypatch, capsys):
    started = []
    real_start = workers_mod.start_engines
    monkeypatch.setattr(workers_mod, "start_engines", lambda *a: started.extend(real_start(*a)) or started)
    original, calls = OutputWriter.write_pair, [0]

    def write_then_interrupt(self, *args, **kwargs):
        original(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(OutputWriter, "write_pair", write_then_interrupt)
    assert main(_args(phantom_data, weights, tmp_path / "out", 2)) == 130
    assert "interrupted" in capsys.readouterr().err
    assert len(started) == 2 and not any(e.process.is_alive() for e in started)
    assert len(list((tmp_path / "out" / "images").glob("*.png"))) == 2


@pytest.mark.slow  # starts worker processes
def test_a_dead_worker_is_named_with_its_exit_code(phantom_data, weights):
    from augpaint_fast.data import Dataset

    opts = SampleOptions(steps=STEPS, batch_size=BATCH)
    engine = EngineProcess(weights, opts).wait_ready()
    try:
        source = load_sources(Dataset.open(phantom_data), engine.size, progress=False)[0]
        assert len(engine.generate([work_item(source, 0, 0, "none")], 0)) == 1
        os.kill(engine.process.pid, signal.SIGKILL)
        with pytest.raises(AugPaintError, match=r"died \(exit code -9\); rerun"):
            engine.generate([work_item(source, 1, 0, "none")], 0)
    finally:
        engine.close(now=True)


def test_the_default_is_the_environment_else_one_per_physical_core(monkeypatch):
    monkeypatch.setattr(workers_mod.host, "physical_cores", lambda: 6)
    monkeypatch.delenv(workers_mod.WORKERS_ENV, raising=False)
    assert default_workers() == 6 and default_workers("cpu") == 6 and default_workers("cuda:1") == 1
    monkeypatch.setenv(workers_mod.WORKERS_ENV, "3")
    assert default_workers("cuda") == 3
    monkeypatch.setenv(workers_mod.WORKERS_ENV, "many")
    with pytest.raises(AugPaintError, match="AUGPAINT_FAST_WORKERS must be an integer >= 1, got 'many'"):
        default_workers()
