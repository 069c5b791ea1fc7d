import json
from pathlib import Path

import pytest

from vla_bench import doctor
from vla_bench.cli import main
from vla_bench.errors import VlaBenchError

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_RUNS = ROOT / "results" / "reference"


def test_compare_fingerprint_reports_the_largest_difference():
    golden = {"init_state": [0.0, 1.0], "object_positions_after_settle": [0.5]}
    assert doctor.compare_fingerprint(golden, {"init_state": [0.0, 1.0 + 1e-9], "object_positions_after_settle": [0.5]}) is None
    moved = doctor.compare_fingerprint(golden, {"init_state": [0.0, 1.0], "object_positions_after_settle": [0.52]})
    assert moved == "object_positions_after_settle differs from golden by up to 0.02"
    assert "has 3 values, golden 2" in doctor.compare_fingerprint(golden, {"init_state": [0, 1, 2], "object_positions_after_settle": [0.5]})


def test_packaged_pins_are_the_simulator_lines_of_constraints_txt():
    """doctor reads package data; it must say what constraints.txt says (`make lock` writes both)."""
    pins = doctor.parse_pins((ROOT / "constraints.txt").read_text())
    assert doctor.pinned_versions() == {name: pins[name] for name in doctor.SIMULATOR_PACKAGES}


def test_packaged_expert_reference_matches_the_reference_runs(tmp_path):
    """The records doctor replays are copies of those in results/reference (`make expert-reference`)."""
    copy = doctor.copy_expert_reference(REFERENCE_RUNS, tmp_path / "reference.jsonl")
    assert doctor.expert_reference(copy) == doctor.expert_reference()
    assert set(doctor.expert_reference()) == set(doctor.EXPERT_EPISODES)


def test_write_pins_refuses_constraints_without_a_simulator_pin(tmp_path):
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("mujoco==3.3.7\n")
    with pytest.raises(VlaBenchError, match="no pin for robosuite"):
        doctor.write_pins(constraints, tmp_path / "pins.txt")


def test_version_drift_names_expected_versions(monkeypatch):
    monkeypatch.setattr(doctor, "pinned_versions", lambda: {"mujoco": "0.0.1"})
    verdict = doctor.check_versions()
    assert not verdict.ok and "(expected 0.0.1)" in verdict.detail and "mujoco" in verdict.detail


@pytest.mark.sim
def test_doctor_passes_on_this_install(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.count("[PASS]") >= 11 and "[FAIL]" not in out and "[PASS] expert libero_goal/0/0" in out


@pytest.mark.sim
def test_doctor_fails_when_the_golden_fingerprint_is_altered(tmp_path):
    from vla_bench import data

    golden = json.loads(data.read_text(doctor.FINGERPRINT_FILE))
    scene = golden["scenes"]["libero_object"]
    scene["object_positions_after_settle"][0] += 0.01
    golden["scenes"] = {"libero_object": scene}
    path = tmp_path / "golden.json"
    path.write_text(json.dumps(golden))
    [verdict] = doctor.check_fingerprints(path)
    assert not verdict.ok
    assert "object_positions_after_settle differs from golden by up to 0.01" in verdict.detail
    assert "mujoco==3.3.7" in verdict.detail


@pytest.mark.sim
def test_doctor_expert_check_fails_on_a_different_reference(tmp_path):
    """A reference that says the episode took another number of steps must fail, naming both."""
    from vla_bench.results.io import read_episodes

    [record] = [r for r in read_episodes(REFERENCE_RUNS / "expert-libero_object") if (r.task_id, r.init_idx) == (0, 0)]
    altered = tmp_path / "reference.jsonl"
    altered.write_text(json.dumps({**record.to_dict(), "steps": record.steps + 1}) + "\n")
    [verdict] = doctor.check_expert(altered, episodes=(("libero_object", 0, 0),))
    assert not verdict.ok and f"reference: success=True in {record.steps + 1} steps" in verdict.detail
