"""Demonstration files: the writer's layout (fast) and a real collected file that replays to success (sim)."""

import json

import h5py
import numpy as np
import pytest

from vla_bench.cli import main
from vla_bench.collect import DemoWriter
from vla_bench.errors import VlaBenchError
from vla_bench.results.schema import EpisodeRecord


def synthetic_buffer(steps: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "actions": list(rng.uniform(-1, 1, size=(steps, 7))),
        "agentview_rgb": list(rng.integers(0, 255, size=(steps, 8, 8, 3), dtype=np.uint8)),
        "eye_in_hand_rgb": list(rng.integers(0, 255, size=(steps, 8, 8, 3), dtype=np.uint8)),
        "state": list(rng.normal(size=(steps, 8))),
        "joint_states": list(rng.normal(size=(steps, 7))),
    }


def test_writer_layout_round_trips(tmp_path, openvla):
    args = {"bddl_file": "x.bddl", "problem_name": "libero_tabletop_manipulation", "env_kwargs": {}}
    writer = DemoWriter(tmp_path / "d.hdf5", openvla, "expert")
    buffers = [synthetic_buffer(5, 0), synthetic_buffer(3, 1)]
    for i, buffer in enumerate(buffers):
        record = EpisodeRecord("libero_goal", 2, "open it", i, 0, True, len(buffer["actions"]), 1.0, "ok")
        writer.add(record, buffer, args)
    writer.close()
    with h5py.File(tmp_path / "d.hdf5") as f:
        data = f["data"]
        assert data.attrs["total"] == 8 and json.loads(data.attrs["problem_info"])["language_instruction"] == "open it"
        for i, buffer in enumerate(buffers):
            demo = data[f"demo_{i}"]
            states = np.asarray(buffer["state"])
            np.testing.assert_array_equal(demo["actions"][()], np.asarray(buffer["actions"]))
            np.testing.assert_array_equal(demo["obs/agentview_rgb"][()], np.asarray(buffer["agentview_rgb"]))
            np.testing.assert_array_equal(demo["obs/eye_in_hand_rgb"][()], np.asarray(buffer["eye_in_hand_rgb"]))
            np.testing.assert_array_equal(demo["obs/ee_pos"][()], states[:, :3])
            np.testing.assert_array_equal(demo["obs/ee_ori"][()], states[:, 3:6])
            np.testing.assert_array_equal(demo["obs/gripper_states"][()], states[:, 6:])
            np.testing.assert_array_equal(demo["obs/joint_states"][()], np.asarray(buffer["joint_states"]))
            assert demo["dones"][()].tolist() == [0] * (len(states) - 1) + [1] == demo["rewards"][()].tolist()
            assert demo.attrs["init_idx"] == i and demo.attrs["num_samples"] == len(states)
    with pytest.raises(VlaBenchError, match="already exists"):
        DemoWriter(tmp_path / "d.hdf5", openvla, "expert")


@pytest.mark.sim
def test_collected_demo_replays_to_success(tmp_path):
    """Collect one expert demo on real LIBERO, then replay its stored actions: same outcome, same length."""
    path = tmp_path / "demos.hdf5"
    assert main(["collect", "--suite", "libero_object", "--tasks", "0", "--trials", "1", "--image-size", "64",
                 "--workers", "0", "--output", str(path), "--no-progress"]) == 0
    with h5py.File(path) as f:
        demo = f["data/demo_0"]
        actions = demo["actions"][()]
        steps = len(actions)
        assert demo["obs/agentview_rgb"].shape == (steps, 64, 64, 3) and demo["obs/joint_states"].shape == (steps, 7)
        assert demo["obs/agentview_rgb"][()].std() > 1.0  # rendered, not blank
        assert json.loads(f["data"].attrs["env_args"])["env_kwargs"]["bddl_file_name"].endswith(".bddl")
    np.savez(tmp_path / "actions.npz", **{"libero_object/0/0": actions})
    out = tmp_path / "replay"
    assert main(["eval", "--suite", "libero_object", "--tasks", "0", "--trials", "1", "--policy", "replay",
                 "--checkpoint", str(tmp_path / "actions.npz"), "--workers", "0", "--output", str(out), "--no-progress"]) == 0
    [record] = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert record["success"] and record["steps"] == steps
