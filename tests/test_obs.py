import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vla_bench.envs.base import EnvSpec
from vla_bench.envs.obs import process_raw, quat_to_axis_angle, quat_to_euler_xyz, state_vector


@pytest.mark.parametrize("seed", range(5))
def test_rotations_match_scipy(seed):
    rotation = Rotation.random(random_state=seed)
    quat = rotation.as_quat()  # x, y, z, w like robosuite
    if quat[3] < 0:
        quat = -quat  # same rotation; axis-angle of the w >= 0 representative
    np.testing.assert_allclose(quat_to_axis_angle(quat), rotation.as_rotvec(), atol=1e-9)
    np.testing.assert_allclose(quat_to_euler_xyz(quat), rotation.as_euler("xyz"), atol=1e-9)


def test_identity_rotation():
    np.testing.assert_array_equal(quat_to_axis_angle(np.array([0, 0, 0, 1.0])), np.zeros(3))


def test_state_vector_layout():
    state = state_vector("axis_angle", [1, 2, 3], [0, 0, 0, 1], [0.04, -0.04])
    np.testing.assert_array_equal(state, [1, 2, 3, 0, 0, 0, 0.04, -0.04])


def _spec(openvla, **changes):
    spec = EnvSpec.from_protocol(openvla, "libero_spatial", 0)
    return EnvSpec(**{**spec.__dict__, **changes})


def test_images_rotated_180_and_resized(openvla):
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    raw = {
        "agentview_image": image,
        "robot0_eye_in_hand_image": image,
        "robot0_eef_pos": np.zeros(3),
        "robot0_eef_quat": np.array([0, 0, 0, 1.0]),
        "robot0_gripper_qpos": np.zeros(2),
    }
    obs = process_raw(raw, _spec(openvla, image_size=None), "task")
    np.testing.assert_array_equal(obs.images["agentview"], image[::-1, ::-1])
    assert obs.images["robot0_eye_in_hand"].flags["C_CONTIGUOUS"]
    unflipped = process_raw(raw, _spec(openvla, flip_images=False, image_size=2), "task")
    assert unflipped.images["agentview"].shape == (2, 2, 3)
    assert process_raw(raw, _spec(openvla, cameras=()), "task").images == {}
