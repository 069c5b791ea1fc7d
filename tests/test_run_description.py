"""run.json as a typed RunDescription (round trip, older files, bad files) and the one identity that
resume, merge, gate and report comparisons share."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from run_helpers import description
from vla_bench.errors import VlaBenchError
from vla_bench.results.description import RunDescription, ShardDescription, read_description, write_description
from vla_bench.results.identity import Purpose, identity, identity_differences

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"
REFERENCE_RUNS = sorted(p.parent for p in REFERENCE.glob("*/run.json"))


def test_write_then_read_is_equal(tmp_path):
    full = description(
        shard=ShardDescription(1, 3, 4), versions={"mujoco": "3.3.7"}, command=("vla-bench", "eval"),
        resumed=({"at": "x", "workers": 2},), status="finished", wall_s=1.5, extra={"future_field": [1, 2]},
    )  # fmt: skip
    write_description(tmp_path, full)
    assert read_description(tmp_path) == full
    assert json.loads((tmp_path / "run.json").read_text())["future_field"] == [1, 2]  # kept for a newer reader


@pytest.mark.parametrize("run_dir", REFERENCE_RUNS, ids=lambda p: p.name)
def test_committed_reference_runs_read_and_round_trip(run_dir, tmp_path):
    run = read_description(run_dir)
    assert run.status == "finished" and run.policy.name == "expert"
    write_description(tmp_path, run)
    assert read_description(tmp_path) == run
    original = json.loads((run_dir / "run.json").read_text())
    written = {k: v for k, v in run.to_json().items() if k in original}
    written["protocol"] = {k: v for k, v in written["protocol"].items() if k in original["protocol"]}  # + fields added since
    assert written == original  # nothing read is lost or changed


def test_an_older_run_json_reads_with_what_that_run_did(tmp_path):
    """No schema_version, no episode_start, a protocol without fields added since (robustness)."""
    data = description().to_json()
    for name in ("schema_version", "episode_start", "image_size", "resumed", "shard"):
        del data[name]
    del data["protocol"]["robustness"]
    (tmp_path / "run.json").write_text(json.dumps(data))
    run = read_description(tmp_path)
    assert run.schema_version == 1 and run.protocol.robustness is False
    assert run.episode_start is None  # it ran before episodes started like a fresh env's: not the current default
    assert [str(d) for d in identity_differences(run, description(), Purpose.RESUME)] == [
        "image_size: None vs 224",
        "episode_start: None vs 'fresh-env'",
    ]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: "{not json", "run.json: not valid JSON"),
        (lambda d: [1, 2], "run.json: expected a JSON object, got list"),
        (lambda d: {**d, "schema_version": 99}, "run.json: unknown schema_version 99"),
        (lambda d: {k: v for k, v in d.items() if k != "trials"}, "run.json: required field 'trials' is missing"),
        (lambda d: {**d, "seed": "zero"}, "run.json: seed: expected an integer, got str 'zero'"),
        (lambda d: {**d, "tasks": {"libero_goal": [0, "1"]}}, "run.json: tasks.libero_goal[1]: expected an integer"),
        (lambda d: {**d, "policy": {"checkpoint": {}}}, "run.json: policy.name: expected a string, got NoneType"),
        (lambda d: {**d, "protocol": {**d["protocol"], "colour": 1}}, "run.json: protocol.colour: not a protocol field"),
        (lambda d: {**d, "protocol": {k: v for k, v in d["protocol"].items() if k != "render_size"}}, "run.json: protocol.render_size: missing"),
        (lambda d: {**d, "protocol": {**d["protocol"], "state": "quaternion"}}, "run.json: protocol: protocol openvla: state must be one of"),
    ],
)
def test_an_invalid_run_json_is_one_line_naming_file_and_field(tmp_path, change, message):
    changed = change(description().to_json())
    (tmp_path / "run.json").write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(VlaBenchError) as error:
        read_description(tmp_path)
    assert message in str(error.value) and str(tmp_path / "run.json") in str(error.value) and "\n" not in str(error.value)


def test_a_minimal_run_json_names_the_first_missing_field(tmp_path):
    (tmp_path / "run.json").write_text('{"schema_version": 1}')
    with pytest.raises(VlaBenchError, match="required field 'protocol' is missing"):
        read_description(tmp_path)


# ---------------------------------------------------------------- identity


def _names(left: RunDescription, right: RunDescription, purpose: Purpose) -> list[str]:
    return [d.field for d in identity_differences(left, right, purpose)]


def test_differences_name_the_field_and_both_values():
    base = description()
    edited = dataclasses.replace(base, protocol=dataclasses.replace(base.protocol, settle_steps=15), seed=7)
    assert [str(d) for d in identity_differences(base, edited, Purpose.RESUME)] == [
        "protocol.settle_steps: 10 vs 15",
        "seed: 0 vs 7",
    ]


@pytest.mark.parametrize(
    "change, resume, merge, compare, column",
    [
        # field changed                               refused by RESUME, MERGE; flagged by COMPARE (gate, report); splits a COLUMN
        (dict(env="libero"), True, True, True, True),
        (dict(seed=7), True, True, True, True),
        (dict(max_steps={"libero_goal": 30}), True, True, True, True),
        (dict(episode_start=None), True, True, True, True),
        (dict(trials=3), True, True, True, False),
        (dict(tasks={"libero_goal": (0, 2)}), True, True, True, False),
        (dict(image_size=128), True, True, False, True),
        (dict(shard=ShardDescription(0, 2)), True, False, False, False),
        (dict(versions={"mujoco": "3.2.0"}), True, True, False, False),
        (dict(renderer="osmesa", workers=9, status="failed", host={"hostname": "b"}), False, False, False, False),
    ],
)
def test_purposes_agree_on_what_each_field_means(change, resume, merge, compare, column):
    base, other = description(), description(**change)
    assert bool(_names(base, other, Purpose.RESUME)) == resume
    assert bool(_names(base, other, Purpose.MERGE)) == merge
    assert bool(_names(base, other, Purpose.COMPARE)) == compare
    assert bool(_names(base, other, Purpose.COLUMN)) == column


def test_policy_and_checkpoint_are_identity_except_when_compared():
    base = description()
    other = description(policy=dataclasses.replace(base.policy, name="random"))
    assert _names(base, other, Purpose.RESUME) == ["policy.name"] == _names(base, other, Purpose.COLUMN)
    assert _names(base, other, Purpose.COMPARE) == []  # a candidate vs a reference: the policy is the point


def test_a_protocol_constant_breaks_identity_but_its_name_only_for_resume_and_merge():
    base = description()
    renamed = description(protocol=dataclasses.replace(base.protocol, name="libero-plus", trials_per_task=1, robustness=True))
    assert _names(base, renamed, Purpose.MERGE) == ["protocol.name", "protocol.trials_per_task", "protocol.robustness"]
    assert _names(base, renamed, Purpose.COMPARE) == [] == _names(base, renamed, Purpose.COLUMN)
    edited = description(protocol=dataclasses.replace(base.protocol, flip_images=False))
    for purpose in Purpose:
        assert _names(base, edited, purpose) == ["protocol.flip_images"]


def test_per_suite_fields_compare_only_common_suites_except_for_resume_and_merge():
    goal = description()
    both = description(suites=("libero_goal", "libero_10"), tasks={"libero_goal": (0, 1), "libero_10": (0,)},
                       max_steps={"libero_goal": 300, "libero_10": 520})  # fmt: skip
    assert _names(goal, both, Purpose.COMPARE) == [] == _names(goal, both, Purpose.COLUMN)
    assert set(_names(goal, both, Purpose.MERGE)) == {"max_steps.libero_10", "tasks.libero_10", "suites"}
    assert "protocol.render_size" in identity(goal, Purpose.COLUMN) and "policy.name" not in identity(goal, Purpose.COMPARE)


# ---------------------------------------------------------------- every site uses the one identity


def _eval_args(out: Path, suite: str = "libero_spatial", policy: str = "zero", max_steps: int = 5) -> list[str]:
    return ["eval", "--env", "fake", "--policy", policy, "--suite", suite, "--tasks", "0", "--trials", "2",
            "--max-steps", str(max_steps), "--no-progress", "--workers", "0", "--output", str(out)]  # fmt: skip


def _eval(out: Path, **changes) -> Path:
    from vla_bench.cli import main

    assert main(_eval_args(out, **changes)) == 0
    return out


def test_resume_merge_gate_and_report_agree_on_a_changed_field(tmp_path, capsys):
    from vla_bench.cli import main
    from vla_bench.merge import merge_runs
    from vla_bench.report.build import build_report
    from vla_bench.report.gate import run_gate

    first = _eval(tmp_path / "a")
    other = _eval(tmp_path / "b", max_steps=4)
    message = "max_steps.libero_spatial: 5 vs 4"
    capsys.readouterr()
    assert main([*_eval_args(first, max_steps=4), "--resume"]) == 2 and message in capsys.readouterr().err  # resume refuses
    with pytest.raises(VlaBenchError, match=message):
        merge_runs([first, other], tmp_path / "merged")  # merge refuses
    with pytest.raises(VlaBenchError, match=f"not the same experiment \\(run vs baseline\\): {message}"):
        run_gate(str(first), str(other))  # the gate refuses
    warnings = build_report([str(first), str(other)]).warnings  # the report warns
    assert "different step limit for libero_spatial: 5 (a) vs 4 (b)" in warnings


def test_runs_of_one_experiment_on_different_suites_form_one_report_column(tmp_path):
    from vla_bench.report.build import build_report

    spatial = _eval(tmp_path / "spatial")
    goal = _eval(tmp_path / "goal", suite="libero_goal")
    again = _eval(tmp_path / "again")  # the same suite again: its own column
    other = _eval(tmp_path / "random", suite="libero_goal", policy="random")  # another policy: its own column
    report = build_report([str(spatial), str(goal), str(again), str(other)])
    assert [(r.label, r.parts, r.suites) for r in report.runs] == [
        ("spatial", ("spatial", "goal"), ["libero_spatial", "libero_goal"]),
        ("again", (), ["libero_spatial"]),
        ("random", (), ["libero_goal"]),
    ]
    frame = report.frame
    assert set(frame[(frame.column == "spatial") & (frame.level == "suite")].suite) == {"libero_spatial", "libero_goal"}
    assert "| spatial (runs spatial + goal) |" in report.markdown()
    assert report.to_json()["runs"][0]["joined"] == ["spatial", "goal"]


def test_a_gate_baseline_naming_an_unknown_preset_is_one_line(tmp_path):
    from vla_bench.report.gate import run_gate

    run = _eval(tmp_path / "run")
    baseline = tmp_path / "published.json"
    baseline.write_text(json.dumps({"protocol": "openvlaa", "suites": {"libero_spatial": {"successes": 1, "ok": 2}}}))
    with pytest.raises(VlaBenchError, match=f"{baseline}: unknown protocol 'openvlaa'.*did you mean 'openvla'"):
        run_gate(str(run), str(baseline))
