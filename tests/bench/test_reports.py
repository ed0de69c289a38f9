"""The benchmark reports committed under docs/bench/ carry their provenance (issue 17, item 5): each report has its
record (``NAME.json``: the ``bench.json`` it was written from) beside it, or says that its record was not kept; a
report whose record marks the run busy says so; and BENCHMARKS.md names every committed record."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "bench"
REPORTS = sorted(DOCS.glob("*.md"))
NOT_KEPT = "Record: **not kept**"


def test_reports_are_there():
    assert REPORTS


@pytest.mark.parametrize("report", REPORTS, ids=lambda p: p.name)
def test_a_report_has_its_record_beside_it_or_says_it_was_not_kept(report):
    text, record = report.read_text(), report.with_suffix(".json")
    if not record.exists():
        assert NOT_KEPT in text
        return
    records = json.loads(record.read_text())
    assert NOT_KEPT not in text
    assert f"- Command: `{records[0]['command']}`" in text  # the record this report was written from
    if any(r["provenance"]["busy_machine"] for r in records):
        assert "**busy machine: these figures are not results**" in text


def test_benchmarks_md_names_every_committed_record():
    text = (ROOT / "BENCHMARKS.md").read_text()
    missing = [p.name for p in DOCS.glob("*.json") if f"docs/bench/{p.name}" not in text]
    assert not missing, missing
