"""Cases and the choice of labelled cases per split (augpaint_fast.pipeline.cases)."""
import json

import pytest

from augpaint_fast.errors import AugPaintError
from augpaint_fast.pipeline.cases import choose_labelled, load_cases

IDS = ["p01_s000", "p01_s001", "p02_s000", "p03_s000", "p03_s001", "p03_s002"]


def test_one_image_is_one_case_by_default():
    assert load_cases(IDS) == {i: [i] for i in IDS}


def test_case_pattern_groups_slices_of_a_patient():
    cases = load_cases(IDS, pattern=r"^(?P<case>p\d+)_")
    assert cases == {"p01": IDS[:2], "p02": [IDS[2]], "p03": IDS[3:]}
    assert load_cases(IDS, pattern=r"^(p\d+)") == cases  # group 1 without a named group
    with pytest.raises(AugPaintError, match="does not match image x"):
        load_cases(IDS + ["x"], pattern=r"^(p\d+)")
    with pytest.raises(AugPaintError, match="not a regular expression"):
        load_cases(IDS, pattern="(")


def test_cases_json_must_cover_every_labelled_image_once(tmp_path):
    f = tmp_path / "cases.json"
    f.write_text(json.dumps({"a": IDS[:3], "b": IDS[3:]}))
    assert load_cases(IDS, cases_file=f) == {"a": IDS[:3], "b": IDS[3:]}
    f.write_text(json.dumps({"a": IDS[:3], "b": IDS[2:]}))
    with pytest.raises(AugPaintError, match="more than one case"):
        load_cases(IDS, cases_file=f)
    f.write_text(json.dumps({"a": IDS[:3]}))
    with pytest.raises(AugPaintError, match="belongs to no case"):
        load_cases(IDS, cases_file=f)
    f.write_text("{not json")
    with pytest.raises(AugPaintError, match="not a readable JSON"):
        load_cases(IDS, cases_file=f)


def test_splits_are_nested_reproducible_and_differ():
    cases = {f"c{i:02d}": [f"c{i:02d}"] for i in range(20)}
    eligible = set(cases) - {"c03"}
    picks = {(s, k): choose_labelled(cases, eligible, k, seed=0, split=s) for s in range(3) for k in (1, 2, 5)}
    for s in range(3):
        assert set(picks[(s, 1)]) <= set(picks[(s, 2)]) <= set(picks[(s, 5)])
        assert "c03" not in picks[(s, 5)]
    assert len({tuple(picks[(s, 5)]) for s in range(3)}) == 3
    assert choose_labelled(cases, eligible, 5, seed=0, split=1) == picks[(1, 5)]
    with pytest.raises(AugPaintError, match="only 19 cases"):
        choose_labelled(cases, eligible, 20, seed=0, split=0)
