"""Cases (patients) of a dataset and the choice of labelled cases for each split.

A *case* groups the images of one patient, so a split never puts two slices of one patient on both sides:

- ``cases.json`` in the dataset folder (or given): ``{"case id": ["image stem", ...], ...}``;
- else ``--case-pattern REGEX`` matched against each labelled image's id: the named group ``case`` if the
  pattern has one, else group 1, else the whole match;
- else one image is one case.

Splits are nested: split ``s`` orders the eligible cases by a permutation drawn from ``(seed, s)`` and its
``k``-case selection is the first ``k`` of that order, so the 2-case selection contains the 1-case one.
Cases whose labels are all empty (no foreground: nothing to keep while inpainting) are not eligible.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..errors import AugPaintError

CASES_FILE = "cases.json"


def load_cases(item_ids: list[str], *, cases_file: Path | None = None, pattern: str | None = None) -> dict[str, list[str]]:
    """case id -> sorted item ids, covering exactly ``item_ids`` (see the module docstring)."""
    ids = sorted(item_ids)
    if cases_file is not None:
        try:
            raw = json.loads(Path(cases_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AugPaintError(f"{cases_file} is not a readable JSON file ({exc})") from None
        if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
            raise AugPaintError(f"{cases_file} must map case ids to lists of image stems")
        cases = {str(c): sorted(str(s) for s in stems) for c, stems in raw.items()}
        seen = [s for stems in cases.values() for s in stems]
        dup = sorted({s for s in seen if seen.count(s) > 1})
        if dup:
            raise AugPaintError(f"{cases_file}: image {dup[0]} is listed in more than one case")
        missing = sorted(set(ids) - set(seen))
        if missing:
            raise AugPaintError(f"{cases_file}: labelled image {missing[0]} belongs to no case")
        unknown = sorted(set(seen) - set(ids))
        if unknown:
            raise AugPaintError(f"{cases_file}: {unknown[0]} is not a labelled image of the dataset")
        return {c: stems for c, stems in sorted(cases.items()) if stems}
    if pattern is not None:
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise AugPaintError(f"--case-pattern {pattern!r} is not a regular expression ({exc})") from None
        cases: dict[str, list[str]] = {}
        for i in ids:
            m = rx.search(i)
            if m is None:
                raise AugPaintError(f"--case-pattern {pattern!r} does not match image {i}")
            key = m.group("case") if "case" in rx.groupindex else (m.group(1) if rx.groups else m.group(0))
            cases.setdefault(key, []).append(i)
        return dict(sorted(cases.items()))
    return {i: [i] for i in ids}


def choose_labelled(cases: dict[str, list[str]], eligible: set[str], count: int, seed: int, split: int) -> list[str]:
    """The ``count`` labelled cases of split ``split`` (nested across counts; module docstring)."""
    pool = sorted(c for c in cases if c in eligible)
    if count > len(pool):
        raise AugPaintError(f"{count} labelled cases asked for, but only {len(pool)} cases have a labelled "
                            f"foreground")
    order = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed & 0xFFFFFFFF, split]))).permutation(len(pool))
    return sorted(pool[i] for i in order[:count])
