"""examples/generator_fidelity.py on a hand-made run folder: compute and fidelity from the records and samples,
the Dice difference as the pipeline's report pairs it, and leftovers of an earlier run (other sampling
settings, a results.json of other options) skipped rather than reported."""
import json
import runpy
from pathlib import Path

import numpy as np
import pytest

from augpaint_fast.data import read_image, resize_image, write_image_png, write_label_png

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "generator_fidelity.py"
OPTIONS = {"labelled": [1], "budgets": ["steps"], "ae_steps": 10, "ldm_steps": 20, "weights": None,
           "paste_back": False, "mask": "box", "margin": 0, "n": 2, "steps": 5}
DICE = {"unet": [0.50, 0.60, 0.70], "rand-aug": [0.40, 0.50, 0.60], "augpaint": [0.55, 0.66, 0.74]}


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _pair(folder: Path, name: str, image: np.ndarray, label: np.ndarray | None = None) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    write_image_png(folder / "images" / f"{name}.png", image)
    if label is not None:
        (folder / "labels").mkdir(parents=True, exist_ok=True)
        write_label_png(folder / "labels" / f"{name}.png", label)


@pytest.fixture
def run(tmp_path):
    """A finished one-label run of 2 splits: k1-s0 sampled with the run's settings (its samples are the
    source as sampling resizes it), k1-s1 with paste-back (left over from another run: to be skipped)."""
    rng = np.random.default_rng(0)
    label = np.zeros((32, 32), np.int64)
    label[8:20, 10:24] = 1
    data = tmp_path / "train"
    for i in range(6):
        _pair(data, f"r{i}", rng.uniform(-1, 1, size=(3, 32, 32)), label)
    root = tmp_path / "run"
    opts = {**OPTIONS, "data": str(data)}
    _write_json(root / "pipeline.json", opts)
    _write_json(root / "stages" / "autoencoder.json",
                {"seconds": 5, "summary": {"seconds": 3600, "heldout_psnr": 21.5}})  # resumed: the trainer's clock
    _write_json(root / "stages" / "ldm.json", {"seconds": 1, "summary": {"seconds": 3600}})
    for split, paste in ((0, False), (1, True)):
        folder = root / "splits" / f"k1-s{split}"
        _pair(folder / "labelled", f"r{split}", read_image(data / "images" / f"r{split}.png"), label)
        source = resize_image(read_image(data / "images" / f"r{split}.png"), 16)
        for k in range(2):
            _pair(folder / "gen" / "augpaint", f"r{split}_{k}", source if paste is False else -source)
        _write_json(root / "stages" / f"k1-s{split}__gen__augpaint.json",
                    {"settings": {"paste_back": paste, "mask_mode": "box", "n": 2, "steps": 5}})
    runs = [{"budget": "steps", "labelled": 1, "method": m, "split": s, "dice": d}
            for m, values in DICE.items() for s, d in enumerate(values)]
    _write_json(root / "results.json", {"options": opts, "runs": runs})
    return root


def test_row_reports_compute_fidelity_and_the_paired_difference(run, tmp_path, capsys):
    example = runpy.run_path(str(EXAMPLE))
    assert example["current_samples"](run, json.loads((run / "pipeline.json").read_text()), "augpaint", 0.0) == [
        (run / "splits" / "k1-s0" / "labelled", run / "splits" / "k1-s0" / "gen" / "augpaint")]
    example["main"]([str(run), "--out", str(tmp_path / "dose.png"), "--markdown"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| run | AE / LDM steps |") and "1 labelled: augpaint − best baseline" in out[0]
    cells = [c.strip() for c in out[2].strip("|").split("|")]
    assert cells[:5] == [str(run), "10 / 20", "2.00", "21.5", "inf"]  # k1-s1's negated samples not counted
    assert cells[5] == "1.00 / 1.00"
    unet, aug = np.array(DICE["unet"]), np.array(DICE["augpaint"])
    assert cells[-1].startswith(f"{100 * (aug - unet).mean():+.1f} [") and cells[-1].endswith("vs unet")
    assert any(line.startswith("Known PSNR:") for line in out)
    assert (tmp_path / "dose.png").stat().st_size > 0


def test_results_of_other_options_and_an_untrained_generator_read_pending(run, capsys):
    example = runpy.run_path(str(EXAMPLE))
    results = json.loads((run / "results.json").read_text())
    _write_json(run / "results.json", {**results, "options": {**results["options"], "ae_steps": 40}})
    example["main"]([str(run)])
    assert capsys.readouterr().out.splitlines()[2].endswith("| pending |")
    (run / "stages" / "ldm.json").unlink()  # the LDM still training: nothing to measure yet
    example["main"]([str(run)])
    cells = [c.strip() for c in capsys.readouterr().out.splitlines()[2].strip("|").split("|")]
    assert cells[1:] == ["10 / 20", "—", "21.5", "—", "—", "—", "—", "pending"]
