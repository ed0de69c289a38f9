"""Every bad input to every command, in one table: one error line, the expected exit code, and no file created or
changed.

A row is ``Case(id, argv, code, fragment, absent, unchanged)``. ``argv`` is a list whose strings may hold the
placeholders ``{data}`` (a copy of a 3-case phantom), ``{weights}`` (a copy of the shipped tiny weights),
``{tmp}`` (the test's empty folder) and ``{file}`` (a plain file in it); ``absent`` are paths (same placeholders)
that must not exist afterwards; ``unchanged`` are paths whose bytes must be the same afterwards (every file of
``{weights}`` is always checked). A ``setup`` callable may prepare the folder first (it gets the placeholder
mapping). The rows are grouped by command so that each group can grow on its own.
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from augpaint_fast.cli import main


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]
    code: int
    fragment: str
    absent: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    setup: Callable[[dict], None] | None = None


# --- sample ------------------------------------------------------------------------------------------------------
SAMPLE_CASES: list[Case] = [
    Case("sample-n-zero", ["sample", "--data", "{data}", "--weights", "{weights}", "--out", "{tmp}/out",
                           "--n", "0"], 2, "--n", absent=["{tmp}/out"]),
    Case("sample-margin-negative", ["sample", "--data", "{data}", "--weights", "{weights}", "--out", "{tmp}/out",
                                    "--margin", "-5"], 2, "--margin must be >= 0", absent=["{tmp}/out"]),
    Case("sample-steps-zero", ["sample", "--data", "{data}", "--weights", "{weights}", "--out", "{tmp}/out",
                               "--steps", "0"], 2, "--steps", absent=["{tmp}/out"]),
    Case("sample-eta-nan", ["sample", "--data", "{data}", "--weights", "{weights}", "--out", "{tmp}/out",
                            "--eta", "nan"], 2, "--eta", absent=["{tmp}/out"]),
    Case("sample-weights-is-a-file", ["sample", "--data", "{data}", "--weights", "{file}", "--out", "{tmp}/out"],
         2, "--weights", absent=["{tmp}/out"], unchanged=["{file}"]),
    Case("sample-out-is-a-file", ["sample", "--data", "{data}", "--weights", "{weights}", "--out", "{file}"],
         2, "exists and is not a folder", unchanged=["{file}"]),
    Case("sample-out-inside-a-file", ["sample", "--data", "{data}", "--weights", "{weights}", "--out",
                                      "{file}/out"], 2, "which is a file", unchanged=["{file}"]),
    Case("sample-other-data-into-an-existing-folder",
         ["sample", "--data", "{tmp}/other", "--weights", "{weights}", "--out", "{tmp}/out", "--steps", "2", "--n",
          "1"], 2, "was made with data=", unchanged=["{tmp}/out"],
         setup=__import__("tests._sample_setups", fromlist=["_"]).sampled_then_other_data),
    Case("sample-every-label-empty", ["sample", "--data", "{tmp}/empty", "--weights", "{weights}", "--out",
                                      "{tmp}/out"], 2, "every label of", absent=["{tmp}/out"],
         setup=__import__("tests._sample_setups", fromlist=["_"]).all_labels_empty),
]

# --- training (train-ae, train-ldm, train-cond) -------------------------------------------------------------------
TRAINING_CASES: list[Case] = []

# --- pipeline ----------------------------------------------------------------------------------------------------
PIPELINE_CASES: list[Case] = [
    Case("pipeline-labelled-more-than-the-cases",
         ["pipeline", "--data", "{data}", "--test", "{data}", "--out", "{tmp}/run", "--weights", "{weights}",
          "--methods", "augpaint", "--labelled", "1", "50"], 2, "--labelled 50", absent=["{tmp}/run"]),
    Case("pipeline-weights-is-a-file", ["pipeline", "--data", "{data}", "--test", "{data}", "--out", "{tmp}/run",
                                        "--weights", "{file}", "--labelled", "1"], 2, "--weights",
         absent=["{tmp}/run"], unchanged=["{file}"]),
    Case("pipeline-out-is-a-file", ["pipeline", "--data", "{data}", "--test", "{data}", "--out", "{file}",
                                    "--weights", "{weights}", "--methods", "augpaint", "--labelled", "1"], 2,
         "exists and is not a folder", unchanged=["{file}"]),
    Case("pipeline-n-zero", ["pipeline", "--data", "{data}", "--test", "{data}", "--out", "{tmp}/run",
                             "--weights", "{weights}", "--methods", "augpaint", "--labelled", "1", "--n", "0"], 2,
         "--n", absent=["{tmp}/run"]),
    Case("pipeline-steps-too-many", ["pipeline", "--data", "{data}", "--test", "{data}", "--out", "{tmp}/run",
                                     "--weights", "{weights}", "--methods", "augpaint", "--labelled", "1",
                                     "--steps", "5000"], 2, "--steps", absent=["{tmp}/run"]),
    Case("pipeline-seg-size", ["pipeline", "--data", "{data}", "--test", "{data}", "--out", "{tmp}/run",
                               "--weights", "{weights}", "--methods", "augpaint", "--labelled", "1",
                               "--seg-size", "30"], 2, "--seg-size", absent=["{tmp}/run"]),
    Case("pipeline-seg-lr-nan", ["pipeline", "--data", "{data}", "--test", "{data}", "--out", "{tmp}/run",
                                 "--weights", "{weights}", "--methods", "augpaint", "--labelled", "1",
                                 "--seg-lr", "nan"], 2, "--seg-lr", absent=["{tmp}/run"]),
    Case("pipeline-cond-without-a-conditional-unet",
         ["pipeline", "--data", "{data}", "--test", "{data}", "--out", "{tmp}/run", "--weights", "{weights}",
          "--methods", "cond-augpaint", "--labelled", "1"], 2, "unet-cond", absent=["{tmp}/run"]),
    Case("pipeline-every-label-empty", ["pipeline", "--data", "{tmp}/empty", "--test", "{data}", "--out",
                                        "{tmp}/run", "--weights", "{weights}", "--methods", "augpaint",
                                        "--labelled", "1"], 2, "every label of", absent=["{tmp}/run"],
         setup=__import__("tests._sample_setups", fromlist=["_"]).all_labels_empty),
]

# --- export ------------------------------------------------------------------------------------------------------
EXPORT_CASES: list[Case] = [
    Case("export-out-is-a-file", ["export", "--weights", "{weights}", "--out", "{file}"], 2,
         "exists and is not a folder", unchanged=["{file}"]),
    Case("export-out-inside-a-file", ["export", "--weights", "{weights}", "--out", "{file}/onnx"], 2,
         "which is a file", unchanged=["{file}"]),
    Case("export-weights-is-a-file", ["export", "--weights", "{file}", "--out", "{tmp}/onnx"], 2,
         "--weights", absent=["{tmp}/onnx"], unchanged=["{file}"]),
    Case("export-batch-sizes-zero", ["export", "--weights", "{weights}", "--out", "{tmp}/onnx",
                                     "--batch-sizes", "4", "0"], 2, "--batch-sizes", absent=["{tmp}/onnx"]),
]

# --- serve (refused before the server starts) --------------------------------------------------------------------
SERVE_CASES: list[Case] = []

CASES = SAMPLE_CASES + TRAINING_CASES + PIPELINE_CASES + EXPORT_CASES + SERVE_CASES


def _digest(root: Path) -> dict[str, str]:
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def places(phantom_data, weights, tmp_path) -> dict[str, str]:
    shutil.copytree(phantom_data, tmp_path / "data")
    shutil.copytree(weights, tmp_path / "weights")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "a_file").write_text("not a folder\n")
    return {"data": str(tmp_path / "data"), "weights": str(tmp_path / "weights"), "tmp": str(tmp_path / "work"),
            "file": str(tmp_path / "work" / "a_file")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case: Case, places, capsys):
    if case.setup is not None:
        case.setup(places)
    capsys.readouterr()
    watched = [Path(u.format(**places)) for u in case.unchanged] + [Path(places["weights"])]
    before = {k: v for root in watched if root.exists() for k, v in _digest(root).items()}
    code = main([a.format(**places) for a in case.argv])
    err = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()
    assert code == case.code, err
    errors = [line for line in err if "error" in line.lower() or "Traceback" in line]
    assert len(errors) == 1 and err[-1] == errors[0], err
    assert errors[0].startswith("augpaint-fast: error: ") and case.fragment in errors[0], errors[0]
    for path in case.absent:
        assert not Path(path.format(**places)).exists(), path
    after = {k: v for root in watched if root.exists() for k, v in _digest(root).items()}
    assert after == before
