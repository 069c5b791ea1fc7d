import json

import pytest

from vla_bench import doctor
from vla_bench.cli import main


def test_compare_fingerprint_reports_the_largest_difference():
    golden = {"init_state": [0.0, 1.0], "object_positions_after_settle": [0.5]}
    assert doctor.compare_fingerprint(golden, {"init_state": [0.0, 1.0 + 1e-9], "object_positions_after_settle": [0.5]}) is None
    moved = doctor.compare_fingerprint(golden, {"init_state": [0.0, 1.0], "object_positions_after_settle": [0.52]})
    assert moved == "object_positions_after_settle differs from golden by up to 0.02"
    assert "has 3 values, golden 2" in doctor.compare_fingerprint(golden, {"init_state": [0, 1, 2], "object_positions_after_settle": [0.5]})


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
    golden = json.loads(doctor.FINGERPRINT_FILE.read_text())
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

    [record] = [r for r in read_episodes(doctor.REFERENCE_DIR / "expert-libero_object") if (r.task_id, r.init_idx) == (0, 0)]
    altered = tmp_path / "expert-libero_object"
    altered.mkdir()
    (altered / "episodes.jsonl").write_text(json.dumps({**record.to_dict(), "steps": record.steps + 1}) + "\n")
    [verdict] = doctor.check_expert(tmp_path, episodes=(("libero_object", 0, 0),))
    assert not verdict.ok and f"reference: success=True in {record.steps + 1} steps" in verdict.detail
