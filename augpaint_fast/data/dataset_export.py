"""``augpaint-fast export-dataset``: an augmented set (generated folders, optionally with the real labelled
pairs) as an nnU-Net v2 raw dataset or as plain folders, for training in the tools people already use.

**nnU-Net v2** (MIC-DKFZ/nnUNet, ``documentation/dataset_format.md``: "Dataset folder structure",
"dataset.json", "Supported file formats"; RGB 2-D PNGs as in its example
``nnunetv2/dataset_conversion/Dataset120_RoadSegmentation.py``)::

    OUT/Dataset{ID:03d}_{NAME}/
      imagesTr/<case>_0000.png   one file per case: nnU-Net stores each input channel in its own file "with the
                                 sole exception being RGB natural images", read by NaturalImage2DIO
      labelsTr/<case>.png        8-bit class map, 0 = background, 1..K (consecutive integers)
      dataset.json               {"channel_names", "labels", "numTraining", "file_ending": ".png",
                                  "overwrite_image_reader_writer": "NaturalImage2DIO"}

Channels must be the same for every case, so the whole dataset is written either greyscale
(``channel_names {"0": "grey"}``, 8-bit L PNGs) or RGB (``{"0": "R", "1": "G", "2": "B"}``, 8-bit RGB PNGs):
``--color auto`` (default) writes greyscale when every image has three equal channels (the project's
replicated grey scans), else RGB; ``--color grey`` writes the mean of the three channels (for grey scans whose
generated samples came out with slightly unequal channels); ``--color rgb`` always writes RGB. ``labels`` is ``{"background": 0,
<name>: 1, ...}`` up to the largest class in the data (or ``--classes``), names from ``--label-names``, else
those a ``--real`` nnU-Net/MSD dataset declares in its ``dataset.json``, else ``class_<k>``. nnU-Net accepts
only lossless files, so every image is re-encoded as PNG (JPEG sources too);
intensities are the project's 8-bit mapping of [-1, 1] (16-bit sources are quantised to 8 bits).

**nnU-Net v2 with NIfTI** (``--file-ending .nii.gz``, for pairs sampled from volume slices): one case per
(source volume, k), ``imagesTr/<case>_0000.nii.gz`` + ``labelsTr/<case>.nii.gz`` on the source volume's voxel
grid with its spacing and orientation, the generated slices restacked in place of the source's
(:mod:`augpaint_fast.data.volume_export`); a ``--real`` NIfTI dataset's volumes are written whole.
``dataset.json`` has ``"file_ending": ".nii.gz"`` and nnU-Net's default reader.

**folder**: ``OUT/images/<case>.png`` + ``OUT/labels/<case>.png`` (same encoding), a dataset root.

Case ids: ``aug_<name>`` for the pairs of a ``--samples`` folder (``aug<i>_<name>`` with several folders, i
from 0 in the order given), ``real_<id>`` for ``--real`` (``real<i>_<id>`` with several). Both formats also
get ``augpaint_export.json``: every case's origin (files, manifest record), the settings, and
``"complete"``, written first as false and last as true. Files are written atomically; a rerun rewrites the
export, removing only files an earlier export of this tool put there; a non-empty folder that is not one of
its exports is refused.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_write, atomic_write_bytes, atomic_write_text
from ..errors import AugPaintError
from ..progress import progress as progress_bar
from .imageio import to_uint8
from .pairs import PairFolder, open_pairs
from .volume_export import plan_volumes, restack

EXPORT_RECORD = "augpaint_export.json"
FORMATS = ("nnunet", "folder")
COLORS = ("auto", "grey", "rgb")
FILE_ENDINGS = (".png", ".nii.gz")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass
class ExportSummary:
    cases: int
    classes: int
    rgb: bool
    root: Path
    file_ending: str = ".png"

    def line(self) -> str:
        kind = "NIfTI volumes" if self.file_ending == ".nii.gz" else "PNG"
        return (f"{self.cases} case(s), {self.classes} class(es), {'RGB' if self.rgb else 'greyscale'} {kind} -> "
                f"{self.root}")


def _cases(samples: list[Path], real: list[Path], max_classes: int) -> list[tuple[str, PairFolder, object]]:
    """(case id, folder, item) for every pair, in the order: samples folders, then real folders."""
    out = []
    for prefix, folders in (("aug", samples), ("real", real)):
        for i, root in enumerate(folders):
            folder = open_pairs(root, max_classes=max_classes)
            tag = prefix if len(folders) == 1 else f"{prefix}{i}"
            out.extend((f"{tag}_{it.id}", folder, it) for it in folder.items)
    return out  # unique: ids are unique within a folder and the prefixes differ between folders


def _declared_names(real: list[Path], max_classes: int) -> list[str] | None:
    """The class names (1..K) the ``real`` nnU-Net/MSD datasets declare in ``dataset.json``, None if none does;
    refuses real datasets that declare different classes."""
    declared = {}
    for root in real:
        names = open_pairs(root, max_classes=max_classes).dataset.class_names
        if names is not None:
            declared[root] = list(names.values())
    if len({tuple(v) for v in declared.values()}) > 1:
        (a, na), (b, nb) = list(declared.items())[:2]
        raise AugPaintError(f"{a} and {b} declare different classes ({', '.join(na)} vs {', '.join(nb)}); name "
                            f"them with --label-names")
    return next(iter(declared.values()), None)


def _save_png(array: np.ndarray, tmp: Path) -> None:
    Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


def _previous_files(root: Path) -> list[str]:
    """Files (relative to ``root``) an earlier export put in ``root``; refuses a folder that is not an export."""
    rec = root / EXPORT_RECORD
    if not root.exists():
        return []
    if not root.is_dir():
        raise AugPaintError(f"{root} exists and is not a folder")
    if not rec.exists():
        if any(root.iterdir()):
            raise AugPaintError(f"{root} is not empty and holds no {EXPORT_RECORD} (not an export of this tool); "
                                f"choose another --out")
        return []
    try:
        return list(json.loads(rec.read_text()).get("files", []))
    except (OSError, ValueError, AttributeError):
        raise AugPaintError(f"{rec} is unreadable; remove the folder or choose another --out") from None


def _write_pngs(loaded, img_dir: Path, lab_dir: Path, suffix: str, rgb: bool, progress: bool) -> dict:
    """Every pair as an 8-bit PNG image and label -> {case: origin}."""
    origins = {}
    for case, folder, item in progress_bar(loaded, enabled=progress, desc="export pairs", unit="pair"):
        s = folder.dataset.load(item)
        pixels = np.moveaxis(to_uint8(s.image), 0, -1) if rgb else to_uint8(s.image.mean(0))
        atomic_write(img_dir / f"{case}{suffix}", lambda tmp: _save_png(pixels, tmp), durable=False)
        atomic_write(lab_dir / f"{case}.png", lambda tmp: _save_png(s.label.astype(np.uint8), tmp), durable=False)
        origins[case] = {"image": str(item.image_path), "label": str(item.label_path),
                         **({"record": folder.records[item.id]} if item.id in folder.records else {})}
    return origins


def _write_volumes(plan, img_dir: Path, lab_dir: Path, progress: bool) -> dict:
    """Every planned volume as ``.nii.gz`` image and label (``volume_export``) -> {case: origin}."""
    origins = {}
    for vc in progress_bar(plan, enabled=progress, desc="export volumes", unit="volume"):
        image, label = restack(vc)
        atomic_write_bytes(img_dir / f"{vc.case}_0000.nii.gz", image, durable=False)
        atomic_write_bytes(lab_dir / f"{vc.case}.nii.gz", label, durable=False)
        origins[vc.case] = vc.origin()
    return origins


def export_dataset(samples: list[Path], real: list[Path], fmt: str, out: Path, *, dataset_id: int = 501,
                   name: str = "AugPaint", label_names: list[str] | None = None, classes: int | None = None,
                   color: str = "auto", max_classes: int = 16, file_ending: str = ".png",
                   progress: bool = True) -> ExportSummary:
    """Export the pairs of ``samples`` (and ``real``) to ``out`` as ``fmt`` (module docstring)."""
    if fmt not in FORMATS:
        raise AugPaintError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if color not in COLORS:
        raise AugPaintError(f"--color must be one of {', '.join(COLORS)}, got {color!r}")
    if file_ending not in FILE_ENDINGS:
        raise AugPaintError(f"--file-ending must be one of {', '.join(FILE_ENDINGS)}, got {file_ending!r}")
    volumes = file_ending == ".nii.gz"
    if volumes and (fmt != "nnunet" or color == "rgb"):
        raise AugPaintError("--file-ending .nii.gz writes greyscale volumes of an nnU-Net dataset: use it with "
                            "--format nnunet and without --color rgb")
    if not samples and not real:
        raise AugPaintError("nothing to export: give --samples and/or --real")
    if fmt == "nnunet":
        if not 1 <= dataset_id <= 999:
            raise AugPaintError(f"--dataset-id must be 1..999 (nnU-Net's three digits), got {dataset_id}")
        if not _NAME.match(name):
            raise AugPaintError(f"--name {name!r} must be letters, digits, '_' or '-'")
        root = Path(out) / f"Dataset{dataset_id:03d}_{name}"
        img_dir, lab_dir, suffix = "imagesTr", "labelsTr", "_0000.png"
    else:
        root = Path(out)
        img_dir, lab_dir, suffix = "images", "labels", ".png"
    cases = _cases([Path(s) for s in samples], [Path(r) for r in real], max_classes)
    if not cases:
        raise AugPaintError("the given folders hold no pairs")
    previous = _previous_files(root)

    # pass 1: read and check everything before writing (channels, classes)
    loaded, rgb, top = [], color == "rgb", 0
    for case, folder, item in progress_bar(cases, enabled=progress, desc="checking pairs", unit="pair"):
        s = folder.dataset.load(item)
        if color == "auto":
            rgb |= not (np.array_equal(s.image[0], s.image[1]) and np.array_equal(s.image[0], s.image[2]))
        top = max(top, int(s.label.max()))
        loaded.append((case, folder, item))
    declared = label_names if label_names is not None else _declared_names([Path(r) for r in real], max_classes)
    k = classes if classes is not None else max(top, len(declared or []))
    if top > k:
        raise AugPaintError(f"the pairs have class {top} but --classes is {k}")
    if k < 1:
        raise AugPaintError("every label is empty: there is no foreground class to export")
    if declared is not None and len(declared) != k:
        where = "--label-names" if label_names is not None else "the --real dataset.json"
        raise AugPaintError(f"{where} gives {len(declared)} name(s) for {k} class(es)")
    names = declared or [f"class_{i}" for i in range(1, k + 1)]
    if "background" in names or len(set(names)) != len(names):
        raise AugPaintError("--label-names must be distinct and must not use 'background'")

    if volumes:
        rgb, suffix, plan = False, "_0000.nii.gz", plan_volumes(loaded)
        cases_out = [vc.case for vc in plan]
    else:
        cases_out = [case for case, _, _ in loaded]
    files = [f"{d}/{case}{suf}" for case in cases_out for d, suf in ((img_dir, suffix), (lab_dir, file_ending))]
    settings = {"format": fmt, "samples": [str(Path(s).resolve()) for s in samples],
                "real": [str(Path(r).resolve()) for r in real], "classes": k, "color": color, "rgb": rgb,
                "file_ending": file_ending}
    try:
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(root / EXPORT_RECORD, json.dumps({**settings, "complete": False,
                                                             "files": sorted(set(previous) | set(files))}) + "\n")
        (root / "dataset.json").unlink(missing_ok=True)
        for rel in set(previous) - set(files):
            (root / rel).unlink(missing_ok=True)
        (root / img_dir).mkdir(exist_ok=True)
        (root / lab_dir).mkdir(exist_ok=True)
        if volumes:
            origins = _write_volumes(plan, root / img_dir, root / lab_dir, progress)
        else:
            origins = _write_pngs(loaded, root / img_dir, root / lab_dir, suffix, rgb, progress)
        if fmt == "nnunet":
            channels = {"0": "R", "1": "G", "2": "B"} if rgb else {"0": "grey"}
            meta = {"channel_names": channels, "labels": {"background": 0, **{n: i + 1 for i, n in enumerate(names)}},
                    "numTraining": len(cases_out), "file_ending": file_ending,
                    **({} if volumes else {"overwrite_image_reader_writer": "NaturalImage2DIO"}), "name": root.name,
                    "description": "AugPaint augmented set exported by augpaint-fast"}
            atomic_write_text(root / "dataset.json", json.dumps(meta, indent=2) + "\n")
        atomic_write_text(root / EXPORT_RECORD, json.dumps({**settings, "complete": True, "files": files,
                                                             "labels": names, "cases": origins}, indent=1) + "\n")
    except OSError as e:
        raise AugPaintError(f"cannot write the export in {root} ({e.strerror or e})") from None
    return ExportSummary(len(cases_out), k, rgb, root, file_ending)


__all__ = ["export_dataset", "ExportSummary", "EXPORT_RECORD"]
