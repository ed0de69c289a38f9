"""`make gpu-check`: every CUDA path of the project checked and measured in one call, for the quarter hour a GPU
machine is lent (Python 3.12, CUDA torch, Triton, onnx, CPU onnxruntime; no TensorRT, no network).

    python3 benchmarks/gpu_check.py OUT              # on the GPU machine, from a clean checkout (make gpu-check OUT=...)
    python3 benchmarks/gpu_check.py OUT --dry-run    # anywhere, in seconds: the same report, no step executed

Steps, run in order from the checkout's root with this interpreter, each under its own timeout (``STEPS``; all
of them at their limits add up to ``BUDGET_S``, under 8 minutes):

- ``build``: the C++ extension in place (``setup.py build_ext --inplace``: offline, nothing installed), and the
  top-level ``kernels/`` and ``export/`` folders linked into the package as an install would map them;
- ``tests``: ``pytest -m gpu`` over ``GPU_TEST_PATHS`` with ``TRITON_INTERPRET`` unset, so Triton compiles;
- ``bench-tiny``, ``bench-paper``: ``augpaint-fast bench --device cuda`` at batch 1 and 8 over ``BENCH_CONFIGS``
  (fp16 and bf16, CUDA graphs on and off, fp32 for the ratios), with the eager loop and latent RePaint baselines.

A step whose requirement is missing is "skipped" with the reason; without a CUDA GPU (or with ``--dry-run``) the
GPU steps are "not run" with the reason. OUT gets ``gpu_check.json`` (machine, commit, one row per step),
``gpu_check.md`` (the same for a reader: which rows ran), ``logs/STEP.log`` and ``bench-PRESET/bench.{json,md}``.
Exit status: 1 if a step failed or timed out, else 0.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_CONFIGS = ("torch-fp32", "torch-fp16", "torch-fp16-graphs", "torch-bf16", "torch:dtype=bfloat16,cuda_graphs=true")
BENCH_PRESETS = {"tiny": 50, "paper": 140}  # preset -> timeout (s)
# Where the tests marked gpu live (tests/bench/test_gpu_check.py keeps this in step): collecting only these keeps
# a module that needs a package the GPU machine lacks (fastapi, ray, ...) from stopping the run.
GPU_TEST_PATHS = ("tests/gpu", "tests/kernels", "tests/ops/test_graphed.py", "tests/engines/test_torch_engine.py")
LINKED = ("kernels", "export")  # top-level folders the wheel installs inside the package (setup.py's package_dir)
VERSIONS = ("torch", "triton", "onnx", "onnxruntime", "tensorrt", "pytest", "matplotlib", "pybind11", "setuptools")


@dataclass(frozen=True)
class Step:
    """One row of the check: a command run from the checkout's root, its timeout, and what it needs."""

    name: str
    checks: str  # what it proves, for the report
    argv: tuple[str, ...]
    timeout_s: int
    needs_cuda: bool = True
    requires: tuple[str, ...] = ()  # modules that must be importable, else the step is skipped
    unset_env: tuple[str, ...] = ()
    produces: str | None = None  # a glob under the checkout that a successful run leaves a file at


@dataclass
class Row:
    """What became of a step: passed, failed, timed out, skipped (a requirement is missing) or not run."""

    name: str
    checks: str
    command: str
    timeout_s: int
    status: str = "not run"
    reason: str = ""
    seconds: float | None = None
    log: str | None = None
    outputs: list[str] = field(default_factory=list)


def steps(out: Path, python: str = sys.executable) -> list[Step]:
    """The check's steps, writing under ``out``."""
    bench = [Step(f"bench-{preset}", f"augpaint-fast bench --device cuda on {preset}: batch 1 and 8, "
                                     f"{', '.join(BENCH_CONFIGS)}, eager loop, latent RePaint",
                  (python, str(ROOT / "benchmarks" / "gpu_check.py"), "--bench", str(out / f"bench-{preset}"),
                   *bench_flags(preset)), timeout)
             for preset, timeout in BENCH_PRESETS.items()]
    return [
        Step("build", "the C++ extension built in place (optional: without it CPU tensors take the reference "
                      "step); kernels/ and export/ linked into the package",
             (python, "setup.py", "build_ext", "--inplace"), 90, needs_cuda=False,
             requires=("setuptools", "pybind11"), produces="augpaint_fast/_C*.so"),  # setup.py only warns
        # (build: 62 s of CPU on the busy 2-core EPYC, from a clean checkout; tests: Triton and inductor compile)
        Step("tests", "pytest -m gpu: Triton fused step compiled vs the reference (every mask dtype and layout), "
                      "fused GroupNorm+SiLU, CUDA-graph loop vs plain loop (bit for bit), torch.compile, the job "
                      "end to end on CUDA, graph caches under 1,000 seeds",
             (python, "-m", "pytest", "-q", "-rs", "-m", "gpu", "-p", "no:cacheprovider",
              f"--junitxml={out / 'tests.xml'}", *GPU_TEST_PATHS), 160, requires=("pytest",),
             unset_env=("TRITON_INTERPRET",)),
        *bench,
    ]


def bench_flags(preset: str) -> tuple[str, ...]:
    """``augpaint-fast bench`` flags of one bench row (pixel RePaint left out: the time goes to the GPU paths;
    quality kept: it is how fp16 and bf16 compare with float32 on trained weights)."""
    return ("--device", "cuda", "--preset", preset, "--batch-sizes", "1", "8", "--repeats", "3",
            "--configs", *BENCH_CONFIGS, "--no-pixel")


BUDGET_S = sum(s.timeout_s for s in steps(Path("OUT")))  # every step at its limit: under 8 minutes


def cuda_state() -> str | None:
    """None if torch sees a CUDA GPU, else why not."""
    try:
        import torch
    except ImportError as exc:
        return f"torch not importable ({exc})"
    return None if torch.cuda.is_available() else "no CUDA GPU visible to torch"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """The machine the check ran on: OS, CPU, GPU and the versions that decide what can run."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "gpu": None,
            "versions": {name: _version(name) for name in VERSIONS}}
    if cuda_state() is None:
        import torch

        info["gpu"] = f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}, {torch.cuda.device_count()} visible)"
    return info


def commit() -> str:
    """HEAD's hash, "+ uncommitted changes" when the tree differs from it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    if head.returncode:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" + uncommitted changes" if dirty else "")


def link_package_folders() -> list[str]:
    """Link ``augpaint_fast/kernels`` and ``augpaint_fast/export`` to the top-level folders where missing (an
    install maps them so; a checkout run in place needs the links). Returns the links made."""
    made = []
    for name in LINKED:
        link = ROOT / "augpaint_fast" / name
        if not link.exists() and (ROOT / name).is_dir():
            link.symlink_to(Path("..") / name)
            made.append(str(link.relative_to(ROOT)))
    return made


def _missing(step: Step) -> list[str]:
    return [m for m in step.requires if importlib.util.find_spec(m) is None]


def run_step(step: Step, out: Path, dry_run: bool, no_cuda: str | None) -> Row:
    """Run ``step`` (or say why not) with its log in ``out``/logs."""
    row = Row(step.name, step.checks, shlex.join(step.argv), step.timeout_s)
    if dry_run:
        row.reason = "dry run: nothing executed" + (f" ({no_cuda})" if no_cuda and step.needs_cuda else "")
        return row
    if step.needs_cuda and no_cuda:
        row.reason = no_cuda
        return row
    missing = _missing(step)
    if missing:
        row.status, row.reason = "skipped", f"not installed here: {', '.join(missing)}"
        return row
    log = out / "logs" / f"{step.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in step.unset_env}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        try:
            code = subprocess.run(step.argv, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                  timeout=step.timeout_s).returncode
            row.status = "passed" if code == 0 else "failed"
            row.reason = "" if code == 0 else f"exit status {code}: see the log"
            if code == 0 and step.produces and not any(ROOT.glob(step.produces)):
                row.status, row.reason = "failed", f"exit status 0 but no {step.produces}: see the log"
        except subprocess.TimeoutExpired:
            row.status, row.reason = "timed out", f"killed after {step.timeout_s} s: see the log"
    row.seconds = round(time.perf_counter() - start, 1)
    row.log = str(log.relative_to(out))
    return row


def run(out: Path, dry_run: bool = False) -> dict:
    """The whole check: every step in order, then ``gpu_check.json`` and ``gpu_check.md`` in ``out``."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    no_cuda = cuda_state()
    links = [] if dry_run else link_package_folders()
    rows = []
    for step in steps(out):
        row = run_step(step, out, dry_run, no_cuda)
        row.outputs = sorted(str(p.relative_to(out)) for p in (out / step.name).glob("*")) if (
            out / step.name).is_dir() else []
        rows.append(row)
        print(f"gpu-check: {row.name}: {row.status}{' (' + row.reason + ')' if row.reason else ''}", flush=True)
    report = {"commit": commit(), "machine": machine(), "dry_run": dry_run, "cuda": no_cuda or "available",
              "started_utc": started.isoformat(timespec="seconds"), "budget_s": BUDGET_S,
              "seconds": round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(), 1),
              "linked": links, "rows": [asdict(r) for r in rows]}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (out / "gpu_check.md").write_text(markdown(report), encoding="utf-8")
    return report


def markdown(report: dict) -> str:
    """The report for a reader: machine, commit, mode, then one row per step and which of them ran."""
    m = report["machine"]
    ran = [r["name"] for r in report["rows"] if r["status"] not in ("not run", "skipped")]
    lines = [
        "# GPU check" + (" (dry run)" if report["dry_run"] else ""), "",
        f"- commit: {report['commit']}",
        f"- machine: {m['platform']}, {m['cpu']} ({m['cpu_count']} logical CPUs), Python {m['python']}",
        f"- GPU: {m['gpu'] or 'none (' + report['cuda'] + ')'}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- started {report['started_utc']}, took {report['seconds']} s (step timeouts add up to "
        f"{report['budget_s']} s)",
        f"- rows that ran: {', '.join(ran) if ran else 'none'}", "",
        "| step | checks | status | why | seconds | log | command |", "|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(f"| {r['name']} | {r['checks']} | {r['status']} | {r['reason'] or '-'} | "
                     f"{r['seconds'] if r['seconds'] is not None else '-'} | {r['log'] or '-'} | `{r['command']}` |")
    for r in report["rows"]:
        if r["outputs"]:
            lines.append(f"\n{r['name']}: " + ", ".join(f"[{o}]({o})" for o in r["outputs"]))
    return "\n".join(lines) + "\n"


def bench_to(out: Path, flags: list[str]) -> None:
    """One bench row: ``augpaint-fast bench FLAGS`` writing ``out``/bench.json and bench.md (and bench.png when
    matplotlib is there: the GPU machine may lack it, and the figures do not need it)."""
    from augpaint_fast.atomic import atomic_write_text
    from augpaint_fast.bench.report import markdown as bench_markdown, plot
    from augpaint_fast.bench.suite import run_bench
    from augpaint_fast.cli.bench import BENCH, settings_from_args
    from augpaint_fast.cli.command import Parser

    parser = Parser(prog="augpaint-fast bench")
    BENCH.add_arguments(parser)
    settings = settings_from_args(parser.parse_args(flags))
    result = run_bench(settings)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "bench.json", json.dumps(result.records, indent=1) + "\n")
    atomic_write_text(out / "bench.md", bench_markdown(result.records, result.summary))
    if importlib.util.find_spec("matplotlib") is not None:
        plot(result.records, result.summary, out / "bench.png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder for gpu_check.json, gpu_check.md, logs/ and bench-*/")
    ap.add_argument("--dry-run", action="store_true", help="write the report without executing any step")
    ap.add_argument("--bench", action="store_true", help=argparse.SUPPRESS)  # one bench row (a step's command)
    args, rest = ap.parse_known_args(argv)
    if args.bench:
        bench_to(args.out, rest)
        return 0
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    report = run(args.out, dry_run=args.dry_run)
    print(f"gpu-check: report {args.out / 'gpu_check.md'}")
    return int(any(r["status"] in ("failed", "timed out") for r in report["rows"]))


if __name__ == "__main__":
    sys.exit(main())
