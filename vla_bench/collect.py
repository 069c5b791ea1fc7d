"""Demonstration collection: run a policy, keep its successful episodes, write a LIBERO/robomimic HDF5.

Layout (what LIBERO's and robomimic's dataset loaders read):

    data/                       attrs: total, env_args (JSON), problem_info (JSON), bddl_file_name (of the
                                       first task, as in LIBERO's one-task files), tasks (JSON list of
                                       [suite, task_id, language]), protocol (JSON), policy,
                                       image_orientation, ee_ori_convention
    data/demo_<i>/              attrs: num_samples, suite, task_id, init_idx, seed, language_instruction,
                                       env_args (JSON)
        actions                 (T, 7) float64, the policy's actions (the training labels)
        actions_executed        (T, 7) float64, the env actions sent, only when collected with action noise
                                (data attrs: action_noise, JSON {"position": std, "rotation": std})
        rewards                 (T,) uint8, 1 at the last (successful) step
        dones                   (T,) uint8, 1 at the last step
        obs/agentview_rgb       (T, H, W, 3) uint8, in the protocol's orientation
        obs/eye_in_hand_rgb     (T, H, W, 3) uint8
        obs/ee_pos              (T, 3)  end-effector position
        obs/ee_ori              (T, 3)  end-effector rotation in the protocol's state convention
        obs/gripper_states      (T, 2)  finger joint positions
        obs/joint_states        (T, 7)  arm joint positions

Observation t is the one the action t was chosen from. Demo numbering follows the episode list,
so files do not depend on which worker ran what.

Action noise (DART, Laskey et al. 2017): with `ActionNoise` the env executes the policy's action plus
Gaussian noise on the arm's position and rotation deltas, while the demo keeps the policy's own action as
the label. The policy (a closed-loop expert) then corrects the drift, so the demos show how to return to
the path from states a learner's own small errors lead to. Seeded per episode: the same noise whatever
worker runs it.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vla_bench.envs.base import Observation
from vla_bench.episodes import Episode
from vla_bench.errors import VlaBenchError
from vla_bench.policies.base import Policy, check_output
from vla_bench.results.schema import STATUS_OK, EpisodeRecord
from vla_bench.specs import Protocol

CAMERA_KEYS = {"agentview": "agentview_rgb", "robot0_eye_in_hand": "eye_in_hand_rgb"}


@dataclasses.dataclass(frozen=True)
class ActionNoise:
    """Standard deviations of the Gaussian noise added to executed actions, in action units (OSC_POSE:
    1 is 5 cm of position or 0.5 rad of rotation); the gripper command is never perturbed."""

    position: float = 0.0
    rotation: float = 0.0

    def __post_init__(self) -> None:
        for name in ("position", "rotation"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise VlaBenchError(f"{name} action noise must be a finite number >= 0, got {value}")

    @property
    def active(self) -> bool:
        return self.position > 0 or self.rotation > 0

    def generator(self, episode: Episode) -> np.random.Generator:
        """The episode's own noise stream: seeded by its identity, not by the worker or the order."""
        return np.random.default_rng([zlib.crc32(episode.suite.encode()), episode.task_id, episode.init_idx, episode.seed])

    def perturb(self, action: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        std = np.array([self.position] * 3 + [self.rotation] * 3)
        noisy = np.array(action, dtype=np.float64)
        noisy[:6] = np.clip(noisy[:6] + rng.normal(size=6) * std, -1.0, 1.0)
        return noisy


class DemoRecorder(Policy):
    """Wraps a policy and keeps, per episode, every observation it was asked about and its action.

    It reads images at every step (so executors render them) and asks for privileged state (for
    the arm joints), whatever the wrapped policy needs."""

    uses_images = True
    needs_privileged = True

    def __init__(self, inner: Policy, image_size: int | None, noise: ActionNoise = ActionNoise()) -> None:
        self.inner = inner
        self.image_size = image_size
        self.noise = noise
        self.buffers: dict[str, dict[str, list[np.ndarray]]] = {}
        self.noise_streams: dict[str, np.random.Generator] = {}

    def validate(self, episodes: Sequence[Episode]) -> None:
        self.inner.validate(episodes)

    def start_episode(self, episode: Episode) -> None:
        keys = ("actions", "actions_executed", *CAMERA_KEYS.values(), "state", "joint_states")
        self.buffers[episode.key] = {key: [] for key in keys}
        self.noise_streams[episode.key] = self.noise.generator(episode)
        self.inner.start_episode(episode)

    def end_episode(self, episode: Episode) -> None:
        self.inner.end_episode(episode)  # the buffers stay until `take` (the record comes after the end)
        self.noise_streams.pop(episode.key, None)

    def infer(self, observations: Sequence[Observation]) -> np.ndarray:
        """The wrapped policy's actions (plus the action noise, if any); every next observation is read
        (rendered), as it is recorded."""
        actions, _ = check_output(self.inner.infer(observations), len(observations), self.inner.uses_images)
        executed = np.array(actions, dtype=np.float64)
        for obs, action, sent in zip(observations, actions, executed):
            buffer = self.buffers[obs.episode]
            missing = [camera for camera in CAMERA_KEYS if camera not in obs.images]
            if missing or obs.privileged is None:
                raise VlaBenchError(f"demo collection needs rendered {', '.join(CAMERA_KEYS)} images and privileged state")
            for camera, key in CAMERA_KEYS.items():
                buffer[key].append(obs.images[camera])
            buffer["state"].append(obs.state)
            buffer["joint_states"].append(obs.privileged["robot_joint_pos"])
            buffer["actions"].append(np.array(action, dtype=np.float64))
            if self.noise.active:
                sent[:] = self.noise.perturb(action, self.noise_streams[obs.episode])
            buffer["actions_executed"].append(sent.copy())
        return executed

    def take(self, key: str) -> dict[str, list[np.ndarray]] | None:
        return self.buffers.pop(key, None)

    def close(self) -> None:
        self.inner.close()


def env_args(protocol: Protocol, suite: str, task_id: int, image_size: int) -> dict[str, Any]:
    """How to rebuild the env that produced a demo (LIBERO ControlEnv keyword arguments)."""
    from vla_bench.envs.libero_env import load_task

    from libero.libero.envs.bddl_utils import get_problem_info

    task, _, bddl = load_task(suite, task_id)
    return {
        "type": 1,
        "env_name": task.name,
        "problem_name": get_problem_info(bddl)["problem_name"],
        "bddl_file": bddl,
        "env_kwargs": {
            "bddl_file_name": bddl,
            "controller": "OSC_POSE",
            "camera_names": list(protocol.cameras),
            "camera_heights": protocol.render_size,
            "camera_widths": protocol.render_size,
            "stored_image_size": image_size,
        },
    }


class DemoWriter:
    """Writes successful episodes into one HDF5 file as they finish."""

    def __init__(self, path: Path, protocol: Protocol, policy_name: str, noise: ActionNoise = ActionNoise()) -> None:
        import h5py

        if path.exists():
            raise VlaBenchError(f"{path} already exists; choose another --output")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.file = h5py.File(path, "w")
        self.data = self.file.create_group("data")
        self.data.attrs["protocol"] = json.dumps(protocol.to_dict())
        self.data.attrs["policy"] = policy_name
        self.data.attrs["image_orientation"] = "rotated 180 degrees" if protocol.flip_images else "as rendered"
        self.data.attrs["ee_ori_convention"] = protocol.state
        self.noise = noise
        if noise.active:
            self.data.attrs["action_noise"] = json.dumps(dataclasses.asdict(noise))
        self.count = 0
        self.tasks: dict[tuple[str, int], str] = {}

    def add(self, record: EpisodeRecord, buffer: dict[str, list[np.ndarray]], args: dict[str, Any]) -> None:
        states = np.asarray(buffer["state"])
        steps = len(buffer["actions"])
        demo = self.data.create_group(f"demo_{self.count}")
        demo.attrs.update(
            num_samples=steps, suite=record.suite, task_id=record.task_id, init_idx=record.init_idx,
            seed=record.seed, language_instruction=record.task, env_args=json.dumps(args),
        )
        done = np.zeros(steps, dtype=np.uint8)
        done[-1] = 1
        demo.create_dataset("actions", data=np.asarray(buffer["actions"]))
        if self.noise.active:
            demo.create_dataset("actions_executed", data=np.asarray(buffer["actions_executed"]))
        demo.create_dataset("rewards", data=done)
        demo.create_dataset("dones", data=done)
        obs = demo.create_group("obs")
        for key in CAMERA_KEYS.values():
            obs.create_dataset(key, data=np.asarray(buffer[key], dtype=np.uint8), compression="gzip", compression_opts=4)
        obs.create_dataset("ee_pos", data=states[:, :3])
        obs.create_dataset("ee_ori", data=states[:, 3:6])
        obs.create_dataset("gripper_states", data=states[:, 6:8])
        obs.create_dataset("joint_states", data=np.asarray(buffer["joint_states"]))
        self.count += 1
        if not self.tasks:  # file-level attributes describe the first task, as in LIBERO's one-task files
            self.data.attrs["env_args"] = json.dumps(args)
            self.data.attrs["bddl_file_name"] = args["bddl_file"]
            self.data.attrs["problem_info"] = json.dumps(
                {"problem_name": args["problem_name"], "language_instruction": record.task}
            )
        if (record.suite, record.task_id) not in self.tasks:
            self.tasks[(record.suite, record.task_id)] = record.task
            self.data.attrs["tasks"] = json.dumps([list(k) + [v] for k, v in self.tasks.items()])
        self.data.attrs["total"] = int(sum(self.data[d].attrs["num_samples"] for d in self.data))
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def keep(record: EpisodeRecord) -> bool:
    return record.status == STATUS_OK and record.success
