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

from augpaint_fast.cli.main import main


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
    Case("sample-workers-zero", ["sample", "--data", "{data}", "--weights", "{weights}", "--out", "{tmp}/out",
                                 "--workers", "0"], 2, "--workers must be >= 1, got 0", absent=["{tmp}/out"]),
    Case("sample-workers-with-ray", ["sample", "--data", "{data}", "--weights", "{weights}", "--out", "{tmp}/out",
                                     "--workers", "2", "--ray"], 2, "--workers and --ray exclude each other",
         absent=["{tmp}/out"]),
]

# --- training (train-ae, train-ldm, train-cond) -------------------------------------------------------------------
class _RunsCode:
    """Pickles as a call of ``open(marker, "w")``: unpickling it (``torch.load(weights_only=False)``) creates the
    marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant_state(folder: str):
    """A setup that puts a code-running ``train_state.pt`` into ``folder`` (placeholders allowed)."""

    def setup(places: dict) -> None:
        import torch

        path = Path(folder.format(**places)) / "train_state.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"settings": {}, "payload": _RunsCode(f"{places['tmp']}/ran")}, path)

    return setup


def _train(command: str, *args: str, weights: str = "{weights}") -> list[str]:
    return [command, "--data", "{data}", "--weights", weights, "--steps", "1", "--batch-size", "2", *args]


TRAINING_CASES: list[Case] = [
    # arguments that cannot give a trained model: refused before the (finished) weights are touched
    Case("train-ae-steps-zero", _train("train-ae", "--steps", "0"), 2, "--steps"),
    Case("train-ldm-steps-negative", _train("train-ldm", "--steps", "-1"), 2, "--steps"),
    Case("train-ae-batch-zero", _train("train-ae", "--batch-size", "0", weights="{tmp}/w"), 2, "--batch-size",
         absent=["{tmp}/w"]),
    Case("train-ldm-batch-zero", _train("train-ldm", "--batch-size", "0"), 2, "--batch-size"),
    Case("train-ldm-cond-batch-zero", _train("train-ldm", "--conditional", "--batch-size", "0"), 2, "--batch-size",
         absent=["{weights}/unet-cond"]),
    Case("train-ae-checkpoint-zero", _train("train-ae", "--checkpoint-every", "0", weights="{tmp}/w"), 2,
         "--checkpoint-every", absent=["{tmp}/w"]),
    Case("train-ae-lr-nan", _train("train-ae", "--lr", "nan", weights="{tmp}/w"), 2, "--lr", absent=["{tmp}/w"]),
    Case("train-ae-lr-inf", _train("train-ae", "--lr", "inf", weights="{tmp}/w"), 2, "--lr", absent=["{tmp}/w"]),
    Case("train-ldm-lr-zero", _train("train-ldm", "--lr", "0"), 2, "--lr"),
    Case("train-ae-lr-negative", _train("train-ae", "--lr", "-0.001"), 2, "--lr"),
    Case("train-ae-seed-too-big", _train("train-ae", "--seed", str(2**64), weights="{tmp}/w"), 2, "--seed",
         absent=["{tmp}/w"]),
    Case("train-ae-disc-start-negative", _train("train-ae", "--disc", "--disc-start", "-1", weights="{tmp}/w"), 2,
         "--disc-start", absent=["{tmp}/w"]),
    Case("train-ae-unknown-preset", _train("train-ae", "--preset", "huge", weights="{tmp}/w"), 2, "unknown preset",
         absent=["{tmp}/w"]),
    Case("train-ae-weights-is-a-file", _train("train-ae", weights="{file}"), 2, "not a folder",
         unchanged=["{file}"]),
    Case("train-ldm-no-autoencoder", _train("train-ldm", weights="{tmp}/w"), 2, "autoencoder", absent=["{tmp}/w"]),
    # a finished model is not replaced by other settings without --force
    Case("train-ae-finished-model-kept", _train("train-ae"), 2, "--force"),
    Case("train-ldm-finished-model-kept", _train("train-ldm"), 2, "--force"),
    # a resume state that would run code is refused unread
    Case("train-ae-state-runs-code", _train("train-ae", weights="{tmp}/w"), 2, "train_state.pt",
         absent=["{tmp}/ran"], unchanged=["{tmp}/w"], setup=_plant_state("{tmp}/w/autoencoder")),
    Case("train-ldm-cond-state-runs-code", _train("train-ldm", "--conditional"), 2, "train_state.pt",
         absent=["{tmp}/ran", "{weights}/unet-cond/model.safetensors"], setup=_plant_state("{weights}/unet-cond")),
    Case("train-seg-state-runs-code", ["train-seg", "--data", "{data}", "--out", "{tmp}/run", "--steps", "1",
                                       "--channels", "8"], 2, "train_state.pt",
         absent=["{tmp}/ran", "{tmp}/run/config.json"], unchanged=["{tmp}/run"], setup=_plant_state("{tmp}/run")),
    Case("train-seg-lr-inf", ["train-seg", "--data", "{data}", "--out", "{tmp}/run", "--steps", "1", "--lr", "inf"],
         2, "--lr", absent=["{tmp}/run"]),
    Case("train-seg-epochs-inf", ["train-seg", "--data", "{data}", "--out", "{tmp}/run", "--epochs", "inf"], 2,
         "--epochs", absent=["{tmp}/run"]),
    Case("train-seg-seed-too-big", ["train-seg", "--data", "{data}", "--out", "{tmp}/run", "--steps", "1", "--seed",
                                    str(2**64)], 2, "--seed", absent=["{tmp}/run"]),
]

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
SERVE_CASES: list[Case] = [
    Case("serve-public-host-without-token", ["serve", "--weights", "{file}", "--host", "0.0.0.0", "--port", "1"], 2,
         "is not a loopback address and no token is set"),  # {file} as weights: refused before loading them
    Case("serve-token-file-missing", ["serve", "--weights", "{file}", "--token-file", "{tmp}/no-token"], 2,
         "cannot read --token-file"),
    Case("serve-token-too-short", ["serve", "--weights", "{file}", "--token-file", "{tmp}/short-token"], 2,
         "at least 16 printable ASCII characters",
         setup=lambda p: Path(p["tmp"], "short-token").write_text("abc\n")),
    Case("serve-header-timeout-zero", ["serve", "--weights", "{file}", "--header-timeout", "0"], 2,
         "--header-timeout must be a number > 0"),
    Case("serve-memory-budget-negative", ["serve", "--weights", "{file}", "--memory-budget-mb", "-1"], 2,
         "--memory-budget-mb must be a number > 0"),
    Case("serve-max-pixels-zero", ["serve", "--weights", "{file}", "--max-pixels", "0"], 2, "--max-pixels must be"),
    Case("serve-workers-negative", ["serve", "--weights", "{file}", "--workers", "-1"], 2,
         "--workers must be >= 1, got -1"),  # {file} as weights: refused before loading them
]

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
