"""Resumable stages: a stage is skipped when its outputs exist and its inputs and settings are unchanged.

Each stage has a name, an output folder and a *fingerprint*: the SHA-256 of its settings and of the
fingerprints of its inputs (upstream stages, or the content hash of an input folder). When it finishes, its
record ``RUN/stages/<name>.json`` (fingerprint, seconds, summary) is written atomically; a later run with the
same fingerprint and an existing output skips it. A different fingerprint (a changed input or setting) removes
the stage's stale output and runs it again, which changes its own fingerprint and so re-runs exactly the stages
that depend on it. A stage interrupted midway has no record, only a ``<name>.started`` marker holding its
fingerprint: it runs again, and the commands it calls resume what they had finished, unless the fingerprint
changed meanwhile, in which case its partial output is removed first.

Wall time: a record keeps the seconds of the run that made it, so a skipped stage reports its original time
(a stage resumed after an interruption reports the time of its last, resuming run). :attr:`Stages.used`
holds every stage this run asked for, by name, for the report.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..atomic import atomic_write_text


def folder_fingerprint(folder: Path, subdirs: tuple[str, ...] = ("images", "labels", "unlabelled")) -> str:
    """SHA-256 over the files of a dataset folder's sub-folders (relative path, size and content; symlinks
    followed), so a changed, added or removed image changes it."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for sub in subdirs:
        root = folder / sub
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                digest.update(p.relative_to(folder).as_posix().encode() + b"\0")
                digest.update(hashlib.sha256(p.read_bytes()).digest())
    extra = folder / "cases.json"
    if extra.is_file():
        digest.update(b"cases.json\0" + hashlib.sha256(extra.read_bytes()).digest())
    return digest.hexdigest()


def fingerprint(settings: dict[str, Any], inputs: list[str]) -> str:
    text = json.dumps({"settings": settings, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class StageResult:
    name: str
    fingerprint: str
    seconds: float
    skipped: bool
    summary: dict = field(default_factory=dict)
    kind: str = ""  # what the report sums its seconds under ("train segmenters", ...); "" = the name


class Stages:
    """The stage records of one pipeline run folder."""

    def __init__(self, run: Path, log: Callable[[str], None] = print):
        self.run, self.log = Path(run), log
        self.records = self.run / "stages"
        self.used: dict[str, StageResult] = {}

    def _record_path(self, name: str) -> Path:
        return self.records / f"{name.replace('/', '__')}.json"

    def run_stage(self, name: str, out: Path, settings: dict[str, Any], inputs: list[str],
                  fn: Callable[[], dict | None], kind: str = "") -> StageResult:
        """Run ``fn`` (which writes ``out``) unless a record with this fingerprint exists and ``out`` does;
        ``kind`` groups the stage's seconds in the report (it is not part of the record)."""
        fp = fingerprint(settings, inputs)
        rec_path = self._record_path(name)
        started = rec_path.with_suffix(".started")
        if rec_path.is_file():
            rec = json.loads(rec_path.read_text(encoding="utf-8"))
            if rec.get("fingerprint") == fp and Path(out).exists():
                return self._used(StageResult(name, fp, rec.get("seconds", 0.0), True, rec.get("summary", {}), kind))
            self.log(f"pipeline: {name}: inputs or settings changed, running it again")
            rec_path.unlink()
            _remove(out)
        elif started.is_file() and started.read_text(encoding="utf-8").strip() != fp:
            self.log(f"pipeline: {name}: an interrupted run had other inputs or settings; starting it afresh")
            _remove(out)
        atomic_write_text(started, fp + "\n")
        self.log(f"pipeline: {name} ...")
        t0 = time.perf_counter()
        summary = fn() or {}
        seconds = time.perf_counter() - t0
        atomic_write_text(rec_path, json.dumps({"name": name, "fingerprint": fp, "seconds": round(seconds, 2),
                                                "settings": settings, "summary": summary}, indent=2,
                                               sort_keys=True, default=str) + "\n")
        started.unlink(missing_ok=True)
        return self._used(StageResult(name, fp, round(seconds, 2), False, summary, kind))

    def _used(self, result: StageResult) -> StageResult:
        self.used[result.name] = result
        return result


def _remove(out: Path) -> None:
    out = Path(out)
    if out.is_dir() and not out.is_symlink():
        shutil.rmtree(out)
    elif out.exists() or out.is_symlink():
        out.unlink()
