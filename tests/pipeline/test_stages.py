"""Resumable pipeline stages (augpaint_fast.pipeline.stages)."""
import json

import pytest

from augpaint_fast.pipeline.stages import Stages, folder_fingerprint


def _writer(out, calls, text="x"):
    def fn():
        calls.append(out.name)
        out.mkdir(parents=True, exist_ok=True)
        (out / "f.txt").write_text(text)
        return {"wrote": text}
    return fn


def test_a_finished_stage_is_skipped_and_a_changed_input_reruns_what_depends_on_it(tmp_path):
    st, calls = Stages(tmp_path / "run", log=lambda m: None), []
    a = st.run_stage("a", tmp_path / "A", {"p": 1}, ["data-v1"], _writer(tmp_path / "A", calls))
    b = st.run_stage("b", tmp_path / "B", {}, [a.fingerprint], _writer(tmp_path / "B", calls))
    assert calls == ["A", "B"] and not a.skipped
    a2 = st.run_stage("a", tmp_path / "A", {"p": 1}, ["data-v1"], _writer(tmp_path / "A", calls))
    b2 = st.run_stage("b", tmp_path / "B", {}, [a2.fingerprint], _writer(tmp_path / "B", calls))
    assert calls == ["A", "B"] and a2.skipped and b2.skipped and b2.summary == {"wrote": "x"}
    # a changed input of a: a reruns, so b's input (a's fingerprint) changes and b reruns; c (independent) not
    c = st.run_stage("c", tmp_path / "C", {}, ["other"], _writer(tmp_path / "C", calls))
    a3 = st.run_stage("a", tmp_path / "A", {"p": 1}, ["data-v2"], _writer(tmp_path / "A", calls, "y"))
    st.run_stage("b", tmp_path / "B", {}, [a3.fingerprint], _writer(tmp_path / "B", calls))
    st.run_stage("c", tmp_path / "C", {}, ["other"], _writer(tmp_path / "C", calls))
    assert calls == ["A", "B", "C", "A", "B"] and not c.skipped


def test_a_missing_output_reruns_and_a_settings_change_removes_the_stale_output(tmp_path):
    st, calls = Stages(tmp_path / "run", log=lambda m: None), []
    st.run_stage("a", tmp_path / "A", {"p": 1}, [], _writer(tmp_path / "A", calls))
    (tmp_path / "A" / "stale.txt").write_text("old")
    st.run_stage("a", tmp_path / "A", {"p": 2}, [], _writer(tmp_path / "A", calls))
    assert not (tmp_path / "A" / "stale.txt").exists()
    import shutil

    shutil.rmtree(tmp_path / "A")
    st.run_stage("a", tmp_path / "A", {"p": 2}, [], _writer(tmp_path / "A", calls))
    assert calls == ["A", "A", "A"]


def test_an_interrupted_stage_leaves_no_record_and_runs_again(tmp_path):
    st, calls = Stages(tmp_path / "run", log=lambda m: None), []

    def crash():
        (tmp_path / "A").mkdir()
        (tmp_path / "A" / "partial").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        st.run_stage("a", tmp_path / "A", {"p": 1}, [], crash)
    assert not list((tmp_path / "run" / "stages").glob("*.json"))
    st.run_stage("a", tmp_path / "A", {"p": 1}, [], _writer(tmp_path / "A", calls))
    assert (tmp_path / "A" / "partial").exists()  # same settings: the partial work is kept for the command to resume
    with pytest.raises(KeyboardInterrupt):
        st.run_stage("b", tmp_path / "B", {"p": 1}, [], lambda: (_ for _ in ()).throw(KeyboardInterrupt))
    (tmp_path / "B").mkdir()
    (tmp_path / "B" / "partial").write_text("half")
    st.run_stage("b", tmp_path / "B", {"p": 2}, [], _writer(tmp_path / "B", calls))
    assert not (tmp_path / "B" / "partial").exists()  # other settings: the partial output is removed first
    rec = json.loads((tmp_path / "run" / "stages" / "b.json").read_text())
    assert rec["settings"] == {"p": 2} and rec["seconds"] >= 0


def test_folder_fingerprint_follows_content(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"1")
    fp = folder_fingerprint(tmp_path)
    (tmp_path / "other.txt").write_text("ignored")
    assert folder_fingerprint(tmp_path) == fp
    (tmp_path / "images" / "a.png").write_bytes(b"2")
    assert folder_fingerprint(tmp_path) != fp
