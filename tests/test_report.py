"""`vla-bench report`, `gate` and `runs` on synthetic run folders and on fake-env runs."""

from __future__ import annotations

import hashlib
import html.parser
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from vla_bench.cli import main
from vla_bench.episodes import make_plan
from vla_bench.errors import VlaBenchError
from vla_bench.report.baselines import baselines, select_baselines
from vla_bench.report.build import build_report
from vla_bench.report.compare import comparability_warnings
from vla_bench.report.runs import load_run
from vla_bench.report.stats import wilson_interval
from vla_bench.results.schema import SCHEMA_VERSION

SNAPSHOTS = Path(__file__).parent / "snapshots"
VERSIONS = {
    "python": "3.11.7",
    "vla_bench": "0.1.0",
    "torch": "2.13.0+cpu",
    "numpy": "1.26.4",
    "mujoco": "3.3.7",
    "robosuite": "1.4.1",
    "bddl": "1.0.1",
    "transformers": "5.23.0",
    "libero": {"name": "rlinf-libero", "version": "0.1.3"},
}


def write_run(
    path: Path,
    outcomes: dict[str, list[str]],
    *,
    protocol: str = "openvla",
    max_steps: int | None = None,
    seed: int | None = None,
    policy: str = "zero",
    checkpoint: str | None = None,
    env: str = "libero",
    renderer: str | None = "egl",
    versions: dict | None = None,
    status: str = "finished",
    first_task: int = 0,
) -> Path:
    """A run folder as `vla-bench eval` writes it. `outcomes` maps a suite to one string per task,
    one character per trial: "1" success, "0" failure, "e" error."""
    trials = {len(t) for tasks in outcomes.values() for t in tasks}
    assert len(trials) == 1, "every task needs the same number of trials"
    n_tasks = {len(tasks) for tasks in outcomes.values()}
    assert len(n_tasks) == 1
    last_task = first_task + n_tasks.pop() - 1
    plan = make_plan(
        suite=",".join(outcomes), protocol=protocol, tasks=f"{first_task}-{last_task}", trials=trials.pop(),
        max_steps=max_steps, seed=seed,
    )  # fmt: skip
    info = {
        "schema_version": SCHEMA_VERSION,
        "protocol": plan.protocol.to_dict(),
        "deviations": plan.deviations,
        "suites": [s.name for s in plan.suites],
        "tasks": {name: list(ids) for name, ids in plan.tasks.items()},
        "trials": plan.trials,
        "max_steps": plan.max_steps,
        "seed": plan.seed,
        "episodes_planned": len(plan.episodes()),
        "policy": {"name": policy, "checkpoint": {"path": checkpoint, "sha256": "ab" * 32 if checkpoint else None}},
        "env": env,
        "rendering": False,
        "renderer": renderer,
        "versions": versions or VERSIONS,
        "git": {"commit": "0" * 40, "dirty": False},
        "host": {"hostname": "test"},
        "started_at": "2026-01-02T03:04:05+00:00",
        "finished_at": "2026-01-02T04:00:00+00:00",
        "status": status,
    }
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps(info, indent=2))
    lines = []
    for suite, tasks in outcomes.items():
        for task_offset, trial_outcomes in enumerate(tasks):
            task_id = first_task + task_offset
            for init_idx, outcome in enumerate(trial_outcomes):
                record = {
                    "suite": suite, "task_id": task_id, "task": f"{suite.split('_')[1]} task {task_id}",
                    "init_idx": init_idx, "seed": plan.seed, "success": outcome == "1",
                    "steps": 10 if outcome == "1" else plan.max_steps[suite], "wall_s": 1.0,
                    "status": "error" if outcome == "e" else "ok",
                    "error": "RuntimeError: simulator died" if outcome == "e" else None,
                    "schema_version": SCHEMA_VERSION,
                }  # fmt: skip
                lines.append(json.dumps(record))
    (path / "episodes.jsonl").write_text("".join(line + "\n" for line in lines))
    return path


def k_of_n(successes: int, n: int) -> str:
    return "1" * successes + "0" * (n - successes)


def folder_state(path: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under `path` with its size, mtime and content hash."""
    state = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        state[str(file.relative_to(path))] = (stat.st_size, stat.st_mtime_ns, hashlib.sha256(file.read_bytes()).hexdigest())
    return state


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def teacher_student(tmp_path):
    """Two runs that differ in protocol, trials, simulator version and renderer; one has errors."""
    teacher = write_run(
        tmp_path / "teacher",
        {"libero_spatial": ["11110", "11100"], "libero_10": ["10100", "11e00"]},
        policy="seer", checkpoint="/ckpt/seer.pth", max_steps=50,
    )  # fmt: skip
    student = write_run(
        tmp_path / "student",
        {"libero_spatial": ["1111", "1110"], "libero_10": ["1110", "1100"]},
        protocol="vita-vla", policy="vita", checkpoint="/ckpt/vita_student", renderer="osmesa",
        versions={**VERSIONS, "mujoco": "3.3.5"},
    )  # fmt: skip
    return teacher, student


# ---------------------------------------------------------------- tables


def test_table_counts_intervals_errors_and_average(teacher_student):
    teacher, student = teacher_student
    report = build_report([str(teacher), str(student)], names="teacher,student")
    frame = report.frame
    row = frame[(frame.column == "teacher") & (frame.level == "suite") & (frame.suite == "libero_10")].iloc[0]
    # libero_10: 10100 + 11e00 -> 10 episodes, 1 error, 4 successes of 9 ok.
    assert (row.episodes, row.ok, row.successes, row.errors) == (10, 9, 4, 1)
    assert row.success_rate == pytest.approx(4 / 9)
    assert (row.ci_low, row.ci_high) == pytest.approx(wilson_interval(4, 9))
    task = frame[(frame.column == "teacher") & (frame.level == "task") & (frame.suite == "libero_spatial") & (frame.task_id == 1)].iloc[0]
    assert (task.successes, task.ok) == (3, 5)
    # Average = mean of suite rates (7/10 and 4/9), not the pooled 11/19.
    average = frame[(frame.column == "teacher") & (frame.level == "average")].iloc[0]
    assert average.success_rate == pytest.approx((7 / 10 + 4 / 9) / 2)
    assert average.success_rate != pytest.approx(11 / 19)


def test_markdown_snapshot_with_mismatched_protocols(teacher_student):
    teacher, student = teacher_student
    report = build_report([str(teacher), str(student)], names="teacher,student", baselines="openvla,vita_vla")
    text = report.markdown()
    snapshot = SNAPSHOTS / "report_teacher_student.md"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        snapshot.write_text(text)
    assert text == snapshot.read_text(), "markdown changed; rerun with UPDATE_SNAPSHOTS=1 and review the diff"


def test_warnings_name_each_difference(teacher_student):
    teacher, student = teacher_student
    warnings = comparability_warnings([load_run(teacher, "teacher"), load_run(student, "student")])
    text = "\n".join(warnings)
    assert "different protocols: openvla (teacher) vs vita-vla (student)" in text
    assert "render_size" in text and "flip_images" in text
    assert "different step limit for libero_spatial: 50 (teacher) vs 600 (student)" in text
    assert "different trials per task: 5 (teacher) vs 4 (student)" in text
    assert "different mujoco version: 3.3.7 (teacher) vs 3.3.5 (student)" in text
    assert "different renderer (MUJOCO_GL): egl (teacher) vs osmesa (student)" in text
    assert "run teacher: 1 episode(s) ended in an error" in text
    assert not any("robosuite" in w for w in warnings)


def test_identical_runs_give_no_warnings(tmp_path):
    a = write_run(tmp_path / "a", {"libero_object": ["1100", "1000"]})
    b = write_run(tmp_path / "b", {"libero_object": ["1110", "0000"]})
    assert comparability_warnings([load_run(a), load_run(b)]) == []


def test_same_protocol_name_with_edited_constant_is_reported(tmp_path):
    a = write_run(tmp_path / "a", {"libero_object": ["11"]})
    b = write_run(tmp_path / "b", {"libero_object": ["10"]})
    info = json.loads((b / "run.json").read_text())
    info["protocol"]["settle_steps"] = 15
    (b / "run.json").write_text(json.dumps(info))
    assert comparability_warnings([load_run(a), load_run(b)]) == ["different protocol constant settle_steps: 10 (a) vs 15 (b)"]


def test_baselines_data(tmp_path):
    registry = baselines()
    assert {"openvla", "openvla_oft", "pi0", "vita_vla", "seer"} <= set(registry)
    for name in registry:
        baseline = registry.get(name)
        assert baseline.source and baseline.protocol
        if baseline.average is not None:  # the paper's Avg is the mean of its four suites
            assert sum(baseline.success.values()) / len(baseline.success) == pytest.approx(baseline.average, abs=6e-4)
    assert registry.get("openvla").success["libero_spatial"] == pytest.approx(0.847)
    assert len(select_baselines("all")) == len(registry.names())
    with pytest.raises(VlaBenchError, match="did you mean 'openvla'"):
        select_baselines("openvlaa")


def test_baseline_average_over_table_suites(tmp_path):
    run = write_run(tmp_path / "run", {"libero_spatial": ["1"], "libero_object": ["1"]})
    frame = build_report([str(run)], baselines="openvla,seer").frame
    average = frame[(frame.level == "average")].set_index("column").success_rate
    assert average["openvla"] == pytest.approx((0.847 + 0.884) / 2)
    assert pd.isna(average["seer"])  # Seer publishes libero_10 only


def test_csv_and_json_outputs(teacher_student, tmp_path, capsys):
    teacher, student = teacher_student
    out_csv, out_json = tmp_path / "t.csv", tmp_path / "t.json"
    code, out, _ = cli(capsys, "report", str(teacher), str(student), "--names", "T,S", "--csv", str(out_csv), "--json", str(out_json), "--baselines", "pi0")
    assert code == 0 and "| libero_spatial |" in out
    frame = pd.read_csv(out_csv)
    assert set(frame.column) == {"T", "S", "pi0"}
    assert len(frame[(frame.level == "task")]) == 8
    data = json.loads(out_json.read_text())
    assert [r["label"] for r in data["runs"]] == ["T", "S"]
    suite = data["runs"][0]["suites"]["libero_10"]
    assert (suite["successes"], suite["ok"], suite["errors"]) == (4, 9, 1)
    assert len(suite["episode_set"]) == 10 and "libero_10/0/0@0" in suite["episode_set"]
    assert data["warnings"] and data["baselines"][0]["name"] == "pi0"


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.attributes: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, k, v) for k, v in attrs if k in ("href", "src")]


def test_html_is_self_contained(teacher_student, tmp_path, capsys):
    teacher, student = teacher_student
    video = teacher / "videos" / "libero_10" / "task0_init2.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"\x00")
    before = folder_state(teacher)
    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    code, _, _ = cli(capsys, "report", str(teacher), str(student), "--html", str(page), "--baselines", "all")
    assert code == 0
    text = page.read_text()
    parser = _Links()
    parser.feed(text)
    parser.close()
    assert parser.tags.count("table") >= 3 and "h1" in parser.tags
    images = [v for tag, k, v in parser.attributes if tag == "img"]
    assert len(images) == 2 and all(v.startswith("data:image/png;base64,") for v in images)
    links = [v for tag, k, v in parser.attributes if tag == "a"]
    assert links == ["../teacher/videos/libero_10/task0_init2.mp4"]
    assert (page.parent / links[0]).resolve() == video.resolve()
    assert "task0_init2.mp4</a> — success" in text  # libero_10 task 0 init 2 succeeded
    assert "://" not in text and "<script" not in text and "url(" not in text
    assert "3.3.5" in text and "vita-vla" in text  # versions and protocol of each run
    assert folder_state(teacher) == before


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / "run.json").unlink(), "run.json: missing"),
        (lambda p: (p / "episodes.jsonl").unlink(), "episodes.jsonl: missing"),
        (lambda p: (p / "run.json").write_text("{not json"), "run.json: not valid JSON"),
        (lambda p: (p / "run.json").write_text('{"schema_version": 99}'), "run.json: unknown schema_version 99"),
        (lambda p: (p / "run.json").write_text("[1, 2]"), "run.json: expected a JSON object"),
        (lambda p: _replace_line(p, 2, '{"suite": "libero_object", "task_id": 0'), "episodes.jsonl:2: malformed episode record"),
        (lambda p: _replace_line(p, 3, '{"suite": "libero_object", "schema_version": 1}'), "episodes.jsonl:3: malformed episode record (missing fields"),
        (lambda p: _replace_line(p, 1, "[]"), "episodes.jsonl:1: malformed episode record (expected a JSON object"),
        (lambda p: _replace_line(p, 4, _line(p, 4).replace('"task_id": 0', '"task_id": "zero"')), "episodes.jsonl:4: malformed episode record (field 'task_id'"),
        (lambda p: (p / "episodes.jsonl").write_text(""), "episodes.jsonl: no complete episode records"),
    ],
)
def test_bad_run_folders_give_one_line_errors(tmp_path, capsys, damage, message):
    run = write_run(tmp_path / "run", {"libero_object": ["1100"]})
    damage(run)
    before = folder_state(run)
    code, out, err = cli(capsys, "report", str(run))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and str(run) in err
    code, _, err = cli(capsys, "gate", str(run), "--baseline", str(run))
    assert code == 2 and message in err
    assert folder_state(run) == before


def _line(run: Path, number: int) -> str:
    return (run / "episodes.jsonl").read_text().splitlines()[number - 1]


def _replace_line(run: Path, number: int, text: str) -> None:
    lines = (run / "episodes.jsonl").read_text().splitlines()
    lines[number - 1] = text
    (run / "episodes.jsonl").write_text("\n".join(lines) + "\n")


def test_run_json_without_a_required_field_is_one_line(tmp_path, capsys):
    """run.json with only the schema version (another tool's, or damaged): report and gate name the
    file and the first missing field; the index skips it."""
    run = write_run(tmp_path / "run", {"libero_object": ["1100"]})
    full = write_run(tmp_path / "full", {"libero_object": ["1100"]})
    (run / "run.json").write_text('{"schema_version": 1}')
    code, out, err = cli(capsys, "report", str(run), str(full))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"{run / 'run.json'}: required field 'protocol' is missing" in err
    code, _, err = cli(capsys, "runs", str(tmp_path))
    assert code == 0 and f"skipped {run}" in err
    code, _, err = cli(capsys, "gate", str(run), "--baseline", str(full))
    assert code == 2 and "required field 'protocol' is missing" in err


def test_torn_last_line_is_ignored_with_a_warning(tmp_path, capsys):
    run = write_run(tmp_path / "run", {"libero_object": ["1100"]})
    with open(run / "episodes.jsonl", "a") as f:
        f.write('{"suite": "libero_obj')
    code, out, _ = cli(capsys, "report", str(run))
    assert code == 0
    assert "last line is incomplete" in out and "2/4" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["report", "{run}", "--names", "a,b"], "--names: expected 1"),
        (["report", "{run}", "{run}"], "two runs share the label 'run'"),
        (["report", "{missing}"], "no such run folder"),
        (["report", "{run}/run.json"], "not a directory"),
        (["report", "{run}", "--baselines", "nope"], "unknown baseline 'nope'"),
        (["report", "{run}", "--csv", "{missing}/x.csv"], "does not exist"),
        (["report", "{run}", "--names", "pi0", "--baselines", "pi0"], "run label 'pi0' is also the name of a baseline"),
    ],
)
def test_bad_arguments(tmp_path, capsys, argv, message):
    run = write_run(tmp_path / "run", {"libero_object": ["1100"]})
    args = [a.format(run=run, missing=tmp_path / "missing") for a in argv]
    code, _, err = cli(capsys, *args)
    assert code == 2 and message in err and err.count("\n") == 1


# ---------------------------------------------------------------- gate


def test_gate_passes_identical_run(tmp_path, capsys):
    ref = write_run(tmp_path / "ref", {"libero_object": [k_of_n(9, 10)] * 5})
    same = write_run(tmp_path / "same", {"libero_object": [k_of_n(9, 10)] * 5})
    code, out, _ = cli(capsys, "gate", str(same), "--baseline", str(ref))
    assert code == 0
    assert "Fisher's exact test" in out
    line = next(line for line in out.splitlines() if line.startswith("libero_object"))
    assert "90.0% (45/50)" in line and "p=" in line and line.endswith("PASS")


def test_gate_fails_clearly_worse_and_passes_within_noise(tmp_path, capsys):
    ref = write_run(tmp_path / "ref", {"libero_object": [k_of_n(9, 10)] * 5})  # 45/50
    worse = write_run(tmp_path / "worse", {"libero_object": [k_of_n(4, 10)] * 5})  # 20/50
    slightly = write_run(tmp_path / "slightly", {"libero_object": [k_of_n(9, 10)] * 3 + [k_of_n(8, 10)] * 2})  # 43/50
    code, out, _ = cli(capsys, "gate", str(worse), "--baseline", str(ref))
    assert code == 1 and "FAIL (significant drop, p < 0.05)" in out and "result: FAIL (1 of 1 suites)" in out
    code, out, _ = cli(capsys, "gate", str(slightly), "--baseline", str(ref))
    assert code == 0 and "result: PASS" in out
    for test in ("fisher", "boschloo"):
        code, out, _ = cli(capsys, "gate", str(slightly), "--baseline", str(ref), "--test", test, "--json")
        data = json.loads(out)
        assert code == 0 and data["passed"] and 0.05 < data["suites"][0]["p_value"] < 1
        assert data["suites"][0]["run"] == {"successes": 43, "ok": 50, "errors": 0, "success_rate": 0.86}


def test_gate_floor_and_suite_selection(tmp_path, capsys):
    outcomes = {"libero_spatial": [k_of_n(3, 10)] * 2, "libero_object": [k_of_n(9, 10)] * 2}
    ref = write_run(tmp_path / "ref", outcomes)
    run = write_run(tmp_path / "run", outcomes)
    code, out, _ = cli(capsys, "gate", str(run), "--baseline", str(ref), "--min-success", "0.5")
    assert code == 1
    assert "below floor 50.0%" in next(line for line in out.splitlines() if line.startswith("libero_spatial"))
    assert next(line for line in out.splitlines() if line.startswith("libero_object")).endswith("PASS")
    code, out, _ = cli(capsys, "gate", str(run), "--baseline", str(ref), "--min-success", "0.5", "--suite", "libero_object")
    assert code == 0 and "libero_spatial" not in out
    code, _, err = cli(capsys, "gate", str(run), "--baseline", str(ref), "--min-success", "80")
    assert code == 2 and "fraction" in err


def test_gate_against_json_baselines(tmp_path, capsys):
    ref = write_run(tmp_path / "ref", {"libero_object": [k_of_n(9, 10)] * 2})
    run = write_run(tmp_path / "run", {"libero_object": [k_of_n(2, 10)] * 2})
    report_json = tmp_path / "ref.json"
    assert cli(capsys, "report", str(ref), "--json", str(report_json))[0] == 0
    code, out, _ = cli(capsys, "gate", str(run), "--baseline", str(report_json))
    assert code == 1 and "18/20" in out and "4/20" in out
    published = tmp_path / "published.json"
    published.write_text(json.dumps({"protocol": "openvla", "suites": {"libero_object": {"successes": 5, "ok": 20}}}))
    code, out, _ = cli(capsys, "gate", str(run), "--baseline", str(published))
    assert code == 0 and "episode sets not checked" in out
    published.write_text(json.dumps({"protocol": "vita-vla", "suites": {"libero_object": {"successes": 5, "ok": 20}}}))
    code, _, err = cli(capsys, "gate", str(run), "--baseline", str(published))
    assert code == 2 and "not the same experiment (run vs baseline): protocol.render_size: 256 vs 128" in err
    published.write_text(json.dumps({"protocol": "openvla", "seed": 3, "suites": {"libero_object": {"successes": 5, "ok": 20}}}))
    code, _, err = cli(capsys, "gate", str(run), "--baseline", str(published))
    assert code == 2 and "seed: 0 vs 3" in err
    published.write_text(json.dumps({"suites": {"libero_object": {"successes": 25, "ok": 20}}}))
    code, _, err = cli(capsys, "gate", str(run), "--baseline", str(published))
    assert code == 2 and "successes 25 exceed ok episodes 20" in err


@pytest.mark.parametrize(
    "other, message",
    [
        (dict(outcomes={"libero_object": ["1100"]}, protocol="vita-vla"), "not the same experiment (run vs baseline): protocol.render_size: 256 vs 128; "),
        (dict(outcomes={"libero_object": ["1100"]}, max_steps=30), "max_steps.libero_object: 280 vs 30"),
        (dict(outcomes={"libero_object": ["1100"]}, seed=7), "not the same experiment (run vs baseline): seed: 0 vs 7"),
        (dict(outcomes={"libero_object": ["1100"]}, env="fake"), "env: 'libero' vs 'fake'"),
        (dict(outcomes={"libero_object": ["110"]}), "not the same experiment (run vs baseline): trials: 4 vs 3"),
        (dict(outcomes={"libero_object": ["1100"]}, first_task=1), "tasks.libero_object: [0] vs [1]"),
        (dict(outcomes={"libero_spatial": ["1100"]}), "suite libero_object: not in the baseline"),
        (dict(outcomes={"libero_object": ["1100"]}, status="interrupted"), None),
    ],
)
def test_gate_refuses_incomparable_input(tmp_path, capsys, other, message):
    run = write_run(tmp_path / "run", {"libero_object": ["1100"]})
    ref = write_run(tmp_path / "ref", other.pop("outcomes"), **other)
    if message is None:  # an interrupted run with fewer episodes than planned
        info = json.loads((ref / "run.json").read_text())
        info["episodes_planned"] = 10
        (ref / "run.json").write_text(json.dumps(info))
        message = "incomplete run: 4 of 10 planned episodes recorded (status interrupted)"
    code, out, err = cli(capsys, "gate", str(run), "--baseline", str(ref))
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


def test_gate_missing_baseline_and_notes_version_changes(tmp_path, capsys):
    run = write_run(tmp_path / "run", {"libero_object": ["1100"]})
    code, _, err = cli(capsys, "gate", str(run), "--baseline", str(tmp_path / "nope"))
    assert code == 2 and "no such run folder or JSON file" in err
    ref = write_run(tmp_path / "ref", {"libero_object": ["1100"]}, versions={**VERSIONS, "mujoco": "3.2.0"})
    code, out, _ = cli(capsys, "gate", str(run), "--baseline", str(ref))
    assert code == 0 and "note: mujoco version differs: 3.3.7 (run) vs 3.2.0 (baseline)" in out


def test_gate_all_errors_fails(tmp_path, capsys):
    ref = write_run(tmp_path / "ref", {"libero_object": ["1100"]})
    run = write_run(tmp_path / "run", {"libero_object": ["eeee"]})
    code, out, _ = cli(capsys, "report", str(run))
    assert code == 0 and "| libero_object | n/a 0/0 (4 err) |" in out
    code, out, _ = cli(capsys, "gate", str(run), "--baseline", str(ref))
    assert code == 1 and "no ok episodes" in out


# ---------------------------------------------------------------- index and fake-env runs


def test_runs_index(tmp_path, capsys):
    write_run(tmp_path / "results" / "a", {"libero_object": ["1100"]}, policy="zero")
    write_run(tmp_path / "results" / "reference" / "b", {"libero_spatial": ["1111"]}, policy="seer", checkpoint="/c/seer.pth")
    broken = tmp_path / "results" / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{")
    before = folder_state(tmp_path / "results")
    code, out, err = cli(capsys, "runs", str(tmp_path / "results"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["run", "policy", "checkpoint", "protocol", "suites", "episodes", "success", "errors", "date", "status"]
    assert any(line.split()[:2] == ["a", "zero"] and "50.0%" in line and "openvla*" in line for line in lines)
    assert any(line.split()[:3] == ["reference/b", "seer", "seer.pth"] and "100.0%" in line for line in lines)
    assert "skipped" in err and "broken/run.json" in err
    code, out, _ = cli(capsys, "runs", str(tmp_path / "results"), "--json")
    assert [json.loads(line)["run"] for line in out.splitlines()] == ["a", "reference/b"]
    assert folder_state(tmp_path / "results") == before


def test_report_and_gate_on_fake_env_runs(tmp_path, capsys):
    common = ["--env", "fake", "--suite", "libero_spatial,libero_goal", "--tasks", "0-2", "--trials", "4", "--no-progress"]
    assert cli(capsys, "eval", *common, "--policy", "random", "--output", str(tmp_path / "r"))[0] == 0
    assert cli(capsys, "eval", *common, "--policy", "zero", "--output", str(tmp_path / "z"))[0] == 0
    before = folder_state(tmp_path / "r")
    code, out, _ = cli(capsys, "report", str(tmp_path / "r"), str(tmp_path / "z"), "--names", "random,zero", "--html", str(tmp_path / "p.html"))
    assert code == 0 and "| suite | random | zero |" in out
    assert "## Comparability warnings" not in out  # same protocol, trials, versions: nothing to warn about
    code, out, _ = cli(capsys, "gate", str(tmp_path / "r"), "--baseline", str(tmp_path / "r"))
    assert code == 0 and out.count("PASS") == 3
    assert folder_state(tmp_path / "r") == before
