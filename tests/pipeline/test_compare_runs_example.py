"""examples/compare_runs.py on hand-made results.json files: one method's paired difference between two runs,
only the splits both have, and a refusal when the runs chose other cases."""
import json
import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "compare_runs.py"


def _run(folder: Path, dice: dict[int, list[float]], hd95: float = 10.0, cases=None) -> Path:
    runs = [{"method": m, "budget": "steps", "labelled": k, "split": s, "cases": (cases or {}).get((k, s), [s]),
             "dice": d + (0.1 if m == "unet" else 0.0), "hd95": hd95}
            for k, ds in dice.items() for s, d in enumerate(ds) for m in ("unet", "augpaint")]
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"runs": runs}))
    return folder


def _compare(*args):
    return runpy.run_path(str(EXAMPLE))["compare"](*args)


def test_the_difference_is_paired_over_the_splits_both_runs_have(tmp_path):
    a = _run(tmp_path / "a", {1: [0.30, 0.40, 0.50, 0.90]}, hd95=10.0)
    b = _run(tmp_path / "b", {1: [0.32, 0.42, 0.52]}, hd95=8.0)  # split 3 not finished in b
    lines = _compare(a, b, "augpaint", "steps")
    assert lines[2] == "| 1 labelled | 3 | 40.0 | 42.0 | +2.0 [+2.0, +2.0] | -2.0 [-2.0, -2.0] |"


def test_runs_that_chose_other_cases_are_not_paired(tmp_path):
    a = _run(tmp_path / "a", {1: [0.3, 0.4]})
    b = _run(tmp_path / "b", {1: [0.3, 0.4]}, cases={(1, 1): ["other"]})
    with pytest.raises(SystemExit, match="chose other cases"):
        _compare(a, b, "augpaint", "steps")
    with pytest.raises(SystemExit, match="no .* is in both"):
        _compare(a, b, "cond-augpaint", "steps")
