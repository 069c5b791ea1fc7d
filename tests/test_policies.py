import numpy as np
import pytest

from vla_bench.envs.base import Observation
from vla_bench.episodes import Episode
from vla_bench.errors import VlaBenchError
from vla_bench.policies import POLICIES, PolicyContext, make_policy


def obs(episode: str, step: int = 0) -> Observation:
    return Observation(images={}, state=np.zeros(8), instruction="x", episode=episode, step=step)


def test_builtin_policies_registered():
    assert {"zero", "random", "replay"} <= set(POLICIES.names())


def test_zero_policy_holds_still_with_gripper_open(openvla):
    actions = make_policy("zero", PolicyContext(openvla)).infer([obs("a/0/0"), obs("a/0/1")])
    np.testing.assert_array_equal(actions, [[0, 0, 0, 0, 0, 0, -1]] * 2)


def test_random_policy_is_per_episode_deterministic(openvla):
    e1, e2 = Episode("s", 0, 0, 0, 5), Episode("s", 0, 1, 0, 5)
    a = make_policy("random", PolicyContext(openvla, seed=3))
    b = make_policy("random", PolicyContext(openvla, seed=3))
    for p in (a, b):
        p.start_episode(e1)
        p.start_episode(e2)
    # a serves the episodes in one batch, b one at a time in the other order: same streams
    batched = a.infer([obs(e1.key), obs(e2.key)])
    single = np.concatenate([b.infer([obs(e2.key)]), b.infer([obs(e1.key)])])[::-1]
    np.testing.assert_array_equal(batched, single)
    assert np.all(np.abs(batched) <= 1) and set(batched[:, 6]) <= {-1.0, 1.0}
    other = make_policy("random", PolicyContext(openvla, seed=4))
    other.start_episode(e1)
    assert not np.array_equal(other.infer([obs(e1.key)]), batched[:1])


def test_replay_npy_and_npz(tmp_path, openvla):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(3, 7))
    np.save(tmp_path / "a.npy", actions)
    replay = make_policy("replay", PolicyContext(openvla, checkpoint=tmp_path / "a.npy"))
    np.testing.assert_array_equal(replay.infer([obs("x/0/0", 1)])[0], actions[1])
    past_end = replay.infer([obs("x/0/0", 5)])[0]
    np.testing.assert_array_equal(past_end, [0, 0, 0, 0, 0, 0, actions[-1, 6]])

    np.savez(tmp_path / "b.npz", **{"libero_10/0/1": actions, "libero_10/0/0": -actions})
    replay = make_policy("replay", PolicyContext(openvla, checkpoint=tmp_path / "b.npz"))
    out = replay.infer([obs("libero_10/0/0", 0), obs("libero_10/0/1", 0)])
    np.testing.assert_array_equal(out, [-actions[0], actions[0]])
    replay.validate([Episode("libero_10", 0, 0, 0, 3)])
    with pytest.raises(VlaBenchError, match="no actions for episode 'libero_10/0/2'"):
        replay.validate([Episode("libero_10", 0, 2, 0, 3)])


@pytest.mark.parametrize("shape", [(3, 6), (7,), (2, 3, 7)])
def test_replay_wrong_shape_names_expected_shape(tmp_path, openvla, shape):
    np.save(tmp_path / "bad.npy", np.zeros(shape))
    with pytest.raises(VlaBenchError, match=r"expected \(T, 7\)"):
        make_policy("replay", PolicyContext(openvla, checkpoint=tmp_path / "bad.npy"))


def test_replay_needs_a_file(tmp_path, openvla):
    with pytest.raises(VlaBenchError, match="needs --checkpoint"):
        make_policy("replay", PolicyContext(openvla))
    with pytest.raises(VlaBenchError, match="does not exist"):
        make_policy("replay", PolicyContext(openvla, checkpoint=tmp_path / "missing.npy"))
    (tmp_path / "junk.npy").write_text("not numpy")
    with pytest.raises(VlaBenchError, match="not a .npy/.npz"):
        make_policy("replay", PolicyContext(openvla, checkpoint=tmp_path / "junk.npy"))
