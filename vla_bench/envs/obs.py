"""Observation processing per protocol: image orientation and size, state vector."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from vla_bench.envs.base import EnvSpec, Observation


def quat_to_axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) of a unit quaternion in (x, y, z, w) order, as robosuite stores it."""
    q = np.asarray(quat_xyzw, dtype=np.float64)
    w = float(np.clip(q[3], -1.0, 1.0))
    sin_half = np.sqrt(max(1.0 - w * w, 0.0))
    if np.isclose(sin_half, 0.0):
        return np.zeros(3)
    return q[:3] * (2.0 * np.arccos(w) / sin_half)


def quat_to_euler_xyz(quat_xyzw: np.ndarray) -> np.ndarray:
    """Roll, pitch, yaw (static x-y-z convention) of a quaternion in (x, y, z, w) order."""
    x, y, z, w = np.asarray(quat_xyzw, dtype=np.float64)
    roll = np.arctan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2.0 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return np.array([roll, pitch, yaw])


ROTATIONS = {"axis_angle": quat_to_axis_angle, "euler": quat_to_euler_xyz}


def state_vector(kind: str, eef_pos: np.ndarray, eef_quat: np.ndarray, gripper_qpos: np.ndarray) -> np.ndarray:
    """The protocol's 8-D state: eef position, eef rotation (axis-angle or Euler), gripper joints."""
    return np.concatenate([np.asarray(eef_pos, dtype=np.float64), ROTATIONS[kind](eef_quat), np.asarray(gripper_qpos, dtype=np.float64)])


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an HxWx3 uint8 image to size x size (area interpolation when shrinking)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    import cv2

    interpolation = cv2.INTER_AREA if size < image.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def process_image(image: np.ndarray, spec: EnvSpec) -> np.ndarray:
    if spec.flip_images:
        image = image[::-1, ::-1]
    if spec.image_size is not None:
        image = resize_image(np.ascontiguousarray(image), spec.image_size)
    return np.ascontiguousarray(image)


def process_raw(raw: Mapping[str, np.ndarray], spec: EnvSpec, instruction: str, with_images: bool = True) -> Observation:
    """Turn a robosuite observation dict into the protocol's Observation (no images if not `with_images`)."""
    cameras = spec.cameras if with_images else ()
    images = {camera: process_image(raw[f"{camera}_image"], spec) for camera in cameras}
    state = state_vector(spec.state, raw["robot0_eef_pos"], raw["robot0_eef_quat"], raw["robot0_gripper_qpos"])
    return Observation(images=images, state=state, instruction=instruction)
