"""Demonstration files: the writer's layout (fast) and a real collected file that replays to success (sim)."""

import json

import h5py
import numpy as np
import pytest

from vla_bench.cli import main
from vla_bench.collect import ActionNoise, DemoRecorder, DemoWriter
from vla_bench.envs.base import Observation
from vla_bench.episodes import Episode
from vla_bench.errors import VlaBenchError
from vla_bench.policies.base import Policy
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


class Steady(Policy):
    """Always the same action, near the action bounds so that clipping shows."""

    def infer(self, observations):
        return np.tile([0.9, -0.2, 0.0, 0.01, 0.0, -0.01, 1.0], (len(observations), 1))


def record_steps(noise: ActionNoise, episodes: list[Episode], steps: int) -> tuple[DemoRecorder, dict]:
    """Runs `steps` batched steps of the episodes (started in the given order); returns what was sent."""
    recorder = DemoRecorder(Steady(), None, noise)
    sent = {e.key: [] for e in episodes}
    for episode in episodes:
        recorder.start_episode(episode)
    for step in range(steps):
        batch = [Observation({"agentview": np.zeros((4, 4, 3), np.uint8), "robot0_eye_in_hand": np.zeros((4, 4, 3), np.uint8)},
                             np.zeros(8), "x", e.key, step, {"robot_joint_pos": np.zeros(7)}) for e in episodes]
        for e, action in zip(episodes, recorder.infer(batch)):
            sent[e.key].append(action)
    return recorder, {k: np.asarray(v) for k, v in sent.items()}


def test_action_noise_perturbs_what_is_sent_and_keeps_the_policy_label(tmp_path, openvla):
    episodes = [Episode("libero_object", t, i, 7, 10) for t, i in [(0, 0), (0, 1), (2, 0)]]
    noise = ActionNoise(position=0.3, rotation=0.05)
    recorder, sent = record_steps(noise, episodes, 20)
    _, again = record_steps(noise, episodes[::-1], 20)  # another order (another worker layout): same noise
    clean = np.array([0.9, -0.2, 0.0, 0.01, 0.0, -0.01, 1.0])
    for e in episodes:
        np.testing.assert_array_equal(sent[e.key], again[e.key])
        assert np.all(sent[e.key][:, 6] == 1.0) and np.all(np.abs(sent[e.key]) <= 1.0)  # gripper kept, clipped
        deviation = sent[e.key][:, :6] - clean[:6]
        assert 0.15 < deviation[:, 1].std() < 0.45 and 0.02 < deviation[:, 4].std() < 0.08
        buffer = recorder.take(e.key)
        np.testing.assert_array_equal(np.asarray(buffer["actions"]), np.tile(clean, (20, 1)))  # the label
        np.testing.assert_array_equal(np.asarray(buffer["actions_executed"]), sent[e.key])
    assert not np.array_equal(sent[episodes[0].key], sent[episodes[1].key])  # each episode its own stream
    _, quiet = record_steps(ActionNoise(), episodes, 3)
    np.testing.assert_array_equal(quiet[episodes[0].key], np.tile(clean, (3, 1)))

    writer = DemoWriter(tmp_path / "d.hdf5", openvla, "expert", noise)
    buffer = synthetic_buffer(4, 0)
    buffer["actions_executed"] = [a + 0.1 for a in buffer["actions"]]
    writer.add(EpisodeRecord("libero_object", 0, "x", 0, 7, True, 4, 1.0, "ok"), buffer, {"bddl_file": "x.bddl", "problem_name": "p"})
    writer.close()
    with h5py.File(tmp_path / "d.hdf5") as f:
        assert json.loads(f["data"].attrs["action_noise"]) == {"position": 0.3, "rotation": 0.05}
        np.testing.assert_array_equal(f["data/demo_0/actions"][()], np.asarray(buffer["actions"]))
        np.testing.assert_array_equal(f["data/demo_0/actions_executed"][()], np.asarray(buffer["actions_executed"]))


@pytest.mark.parametrize("flag", ["--action-noise", "--rotation-noise"])
def test_negative_action_noise_is_a_one_line_error(tmp_path, capsys, flag):
    assert main(["collect", "--suite", "libero_object", "--tasks", "0", "--trials", "1", flag, "-0.1",
                 "--output", str(tmp_path / "d.hdf5")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "action noise must be a finite number >= 0" in err
    assert not (tmp_path / "d.hdf5").exists()


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
