"""``augpaint-fast bench``: AugPaint against its baselines and against the machine's limit, in one run.

Writes ``OUT/bench.json`` (or ``--json PATH``): a list of records, ``OUT/bench.md`` (machine, limits, the table,
goals) and ``OUT/bench.png`` (samples/s by configuration and batch size, with the limit drawn).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

# --quick: a check that everything runs (under a minute on a 2-core CPU), not figures to quote
QUICK = {"preset": "tiny", "batch_sizes": (1,), "repeats": 2, "timed_steps": 10, "repaint_timed_calls": 3,
         "peak_repeats": 1, "quality_sources": 1}


def run_bench_to(settings, out: Path, json_path: Path | None = None) -> None:
    """Run the bench of ``settings`` and write ``out``/bench.json (or ``json_path``), bench.md and bench.png."""
    from tqdm.auto import tqdm

    from ..atomic import atomic_write_text
    from ..errors import AugPaintError
    from ..host import optional_import
    from .report import MATPLOTLIB, markdown, plot
    from .suite import run_bench

    optional_import("matplotlib", **MATPLOTLIB)  # fail before measuring, not after
    settings.check()  # before the output folder is created
    out = Path(out)
    json_path = Path(json_path) if json_path else out / "bench.json"
    try:
        out.mkdir(parents=True, exist_ok=True)
        json_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AugPaintError(f"cannot create {out} ({exc.strerror or exc})") from None
    result = run_bench(settings, log=tqdm.write)
    md = markdown(result.records, result.summary)
    try:
        atomic_write_text(json_path, json.dumps(result.records, indent=1) + "\n")
        atomic_write_text(out / "bench.md", md)
        png = plot(result.records, result.summary, out / "bench.png")
    except OSError as exc:
        raise AugPaintError(f"cannot write the bench results ({exc.strerror or exc}: {exc.filename})") from None
    sys.stdout.write("\n" + md)
    print(f"records: {json_path}\nreport: {out / 'bench.md'}\nplot: {png}")
