import json

import pytest

from run_helpers import description
from vla_bench.errors import VlaBenchError
from vla_bench.results.io import RunWriter, read_episodes, read_run
from vla_bench.results.schema import SCHEMA_VERSION, EpisodeRecord
from vla_bench.results.summary import Summary, to_csv


def record(task_id=0, init_idx=0, success=False, status="ok", suite="libero_goal"):
    return EpisodeRecord(suite, task_id, f"task {task_id}", init_idx, 0, success, 3, 0.1, status, None if status == "ok" else "boom")


def test_writer_appends_and_summarises(tmp_path):
    writer = RunWriter.create(tmp_path / "run", description())
    assert read_run(tmp_path / "run")["status"] == "running"
    for r in [record(0, 0, True), record(0, 1, False), record(1, 0, True), record(1, 1, status="error")]:
        writer.append(r)
    summary = writer.finish("finished")
    run = read_run(tmp_path / "run")
    assert run["status"] == "finished" and run["schema_version"] == SCHEMA_VERSION
    assert len(read_episodes(tmp_path / "run")) == 4
    suite = summary.suites["libero_goal"]
    assert (suite.episodes, suite.successes, suite.errors, suite.rate) == (4, 2, 1, 2 / 3)
    csv_text = (tmp_path / "run" / "summary.csv").read_text().splitlines()
    assert csv_text[0] == "schema_version,suite,task_id,task,episodes,successes,errors,success_rate"
    assert csv_text[-1] == "1,libero_goal,,ALL,4,2,1,0.6667"
    assert "| libero_goal | 66.7% | 2 / 3 | 1 |" in (tmp_path / "run" / "summary.md").read_text()


def test_writer_refuses_a_folder_with_a_run(tmp_path):
    RunWriter.create(tmp_path, description())
    with pytest.raises(VlaBenchError, match="already holds a run"):
        RunWriter.create(tmp_path, description())


def test_torn_last_line_is_dropped_and_malformed_lines_named(tmp_path):
    path = tmp_path / "episodes.jsonl"
    good = json.dumps(record().to_dict())
    path.write_text(good + "\n" + good[:20])
    assert len(read_episodes(tmp_path)) == 1
    path.write_text(good + "\n{not json}\n" + good + "\n")
    with pytest.raises(VlaBenchError, match=r"episodes.jsonl:2: malformed"):
        read_episodes(tmp_path)
    path.write_text(json.dumps({**record().to_dict(), "schema_version": 99}) + "\n")
    with pytest.raises(VlaBenchError, match="unknown schema_version 99"):
        read_episodes(tmp_path)


def test_read_run_errors(tmp_path):
    with pytest.raises(VlaBenchError, match="run.json: missing"):
        read_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"schema_version": 0}))
    with pytest.raises(VlaBenchError, match="unknown schema_version"):
        read_run(tmp_path)


def test_summary_of_errors_only_has_no_rate():
    summary = Summary.from_records([record(status="error")])
    assert summary.suites["libero_goal"].rate is None
    assert to_csv(summary, 1).splitlines()[-1].endswith(",1,0,1,")
