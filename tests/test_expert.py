"""The expert's planning logic without the simulator: goal parsing, grasp geometry, servoing,
and the pick-and-place state machine driven on a small kinematic stand-in for the robot."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vla_bench.envs.base import Observation
from vla_bench.episodes import Episode
from vla_bench.errors import VlaBenchError
from vla_bench.policies import make_policy
from vla_bench.policies.base import PolicyContext
from vla_bench.policies.expert.articulate import joint_goal, satisfied
from vla_bench.policies.expert.controller import PlaceSkill, choose_grasp, clearance, servo
from vla_bench.policies.expert.geometry import box_corners, extreme_points, plan_grasp, plan_grasps, points_box, world_box, yaw_error
from vla_bench.policies.expert.goals import Articulate, Place, parse_goal, with_preconditions
from vla_bench.specs import protocols

DOWN = np.diag([1.0, -1.0, -1.0])  # gripper pointing down, fingers closing along world x


def body(pos, half, yaw=0.0):
    mat = Rotation.from_euler("z", yaw).as_matrix()
    half = np.asarray(half, dtype=float)
    return {"pos": np.asarray(pos, dtype=float), "mat": mat, "box": (-half, half), "fixture": False, "joints": []}


# --- goals ---------------------------------------------------------------------------------------


def test_parse_goal_orders_open_before_place_before_close():
    goal = [("close", "cabinet_1_bottom_region"), ("in", "bowl_1", "cabinet_1_bottom_region"), ("Open", "microwave_1")]
    assert parse_goal(goal) == [
        Articulate("microwave_1", "open"),
        Place("bowl_1", "cabinet_1_bottom_region", "in"),
        Articulate("cabinet_1_bottom_region", "close"),
    ]


def test_parse_goal_keeps_bddl_order_within_a_kind():
    goal = [("on", "mug_1", "plate_1"), ("on", "mug_2", "plate_2")]
    assert [g.obj for g in parse_goal(goal)] == ["mug_1", "mug_2"]


@pytest.mark.parametrize("predicate", [("up", "bowl_1"), ("on", "bowl_1"), ("stack", "a", "b")])
def test_parse_goal_rejects_what_it_cannot_plan(predicate):
    with pytest.raises(VlaBenchError, match="cannot plan"):
        parse_goal([predicate])


# --- geometry -------------------------------------------------------------------------------------


def test_world_box_of_a_turned_box():
    box = world_box(body([0.1, 0.2, 0.05], [0.04, 0.02, 0.05], yaw=np.pi / 2))
    assert box.top == pytest.approx(0.10) and box.bottom == pytest.approx(0.0)
    # the long side (local x) now points along world y
    long_axis = box.axes[int(np.argmax(box.half_widths))]
    assert abs(long_axis[1]) == pytest.approx(1.0)
    assert sorted(box.half_widths) == pytest.approx([0.02, 0.04])


def test_narrow_object_is_grasped_across_its_narrow_side_at_its_centre():
    box = world_box(body([0.0, 0.0, 0.01], [0.04, 0.02, 0.01], yaw=0.3))
    grasp = plan_grasp(box, approach_from=np.array([-0.6, 0.0]))
    assert not grasp.rim
    assert grasp.point[:2] == pytest.approx([0.0, 0.0])
    narrow = np.array([-np.sin(0.3), np.cos(0.3)])  # local y after the turn
    assert abs(float(grasp.close_dir @ narrow)) == pytest.approx(1.0)
    assert box.bottom < grasp.point[2] < box.top


def test_wide_object_is_grasped_by_its_wall_facing_the_robot_first():
    box = world_box(body([0.1, 0.0, 0.03], [0.055, 0.055, 0.03]))
    grasps = plan_grasps(box, approach_from=np.array([-0.6, 0.0]))
    assert len(grasps) == 4 and all(g.rim for g in grasps)
    first = grasps[0]
    assert first.point[0] < 0.1 - 0.03  # the robot side, near the wall
    assert np.linalg.norm(first.point[:2] - [0.1, 0.0]) < 0.055
    assert abs(float(first.close_dir @ [1.0, 0.0])) == pytest.approx(1.0)  # fingers close radially
    assert grasps[-1].point[0] > 0.1 + 0.03  # the far side comes last


def test_rim_grasp_avoids_a_neighbour():
    bowl = body([0.1, 0.0, 0.03], [0.055, 0.055, 0.03])
    wall = body([-0.02, 0.0, 0.1], [0.05, 0.2, 0.1])  # something tall right at the robot side
    priv = {"robot_base": np.array([-0.6, 0.0, 0.0]), "bodies": {"bowl": bowl, "wall": wall}, "joints": {}}
    grasp = choose_grasp(priv, "bowl", world_box(bowl))
    assert grasp.point[0] > 0.03 + 0.04  # not pinched against the wall
    assert clearance(priv, "bowl", grasp.point, grasp.point[2] - 0.02) >= 0.05


@pytest.mark.parametrize(
    ("current", "desired", "expected"),
    [((1, 0), (0, 1), np.pi / 2), ((1, 0), (-1, 0), 0.0), ((1, 0), (1, 1), np.pi / 4), ((1, 0), (1, -1), -np.pi / 4)],
)
def test_yaw_error_treats_finger_directions_as_lines(current, desired, expected):
    assert abs(yaw_error(np.array(current, float), np.array(desired, float))) == pytest.approx(abs(expected), abs=1e-9)
    if expected:
        assert np.sign(yaw_error(np.array(current, float), np.array(desired, float))) in (1.0, -1.0)


def test_servo_points_toward_the_target_and_saturates():
    priv = {"eef_pos": np.zeros(3), "eef_mat": DOWN}
    action = servo(priv, np.array([0.5, -0.001, 0.0]), np.array([1.0, 0.0]), gripper=1.0)
    assert action[0] == 1.0 and -1.0 < action[1] < 0.0 and action[2] == 0.0
    assert action[3:6] == pytest.approx(np.zeros(3), abs=1e-9)  # already aligned
    assert action[6] == 1.0
    turned = servo(priv, np.zeros(3), np.array([0.0, 1.0]), gripper=-1.0)
    assert abs(turned[5]) > 0.5 and turned[3:5] == pytest.approx([0.0, 0.0], abs=1e-9)


# --- the pick-and-place state machine on a kinematic stand-in -------------------------------------


class KinematicWorld:
    """A point end effector that moves a fraction of each commanded delta, turns about z, and
    carries an object when it closes the gripper around it; a released object falls onto the
    floor or into the basket region."""

    def __init__(self, obj_pos, obj_yaw=0.0):
        self.eef = np.array([-0.15, 0.0, 0.25])
        self.mat = DOWN.copy()
        self.closed = 0.0  # 0 open .. 1 closed
        self.obj = body(obj_pos, [0.04, 0.02, 0.02], yaw=obj_yaw)
        self.basket = body([0.0, 0.25, 0.07], [0.08, 0.08, 0.07])
        self.region = {"pos": np.array([0.0, 0.25, 0.07]), "mat": np.eye(3), "size": np.array([0.06, 0.06, 0.07]), "parent": "basket_1", "joints": [], "joint_names": []}
        self.offset = None

    def priv(self):
        return {
            "goal": [("in", "cheese_1", "basket_1_contain_region")],
            "eef_pos": self.eef.copy(),
            "eef_mat": self.mat.copy(),
            "robot_base": np.array([-0.66, 0.0, 0.0]),
            "bodies": {"cheese_1": dict(self.obj, pos=self.obj["pos"].copy()), "basket_1": self.basket},
            "sites": {"basket_1_contain_region": self.region},
        }

    def step(self, action):
        self.eef = self.eef + 0.6 * 0.05 * np.clip(action[:3], -1, 1)
        self.mat = Rotation.from_rotvec(0.6 * 0.5 * action[3:6]).as_matrix() @ self.mat
        closing = action[6] > 0
        self.closed = min(1.0, self.closed + 0.2) if closing else max(0.0, self.closed - 0.2)
        box = world_box(self.obj)
        if self.offset is None and self.closed >= 1.0:
            across = abs(float(self.mat[:2, 0] @ box.axes[int(np.argmin(box.half_widths))]))
            if np.linalg.norm(self.eef[:2] - self.obj["pos"][:2]) < 0.015 and box.bottom < self.eef[2] < box.top and across > 0.95:
                self.offset = self.obj["pos"] - self.eef
        if self.offset is not None and self.closed < 0.5:
            self.offset = None
            inside = np.all(np.abs(self.obj["pos"][:2] - self.region["pos"][:2]) < self.region["size"][:2])
            floor = 0.0 if not inside else 0.005
            self.obj["pos"][2] = floor + 0.02
        if self.offset is not None:
            self.obj["pos"] = self.eef + self.offset

    def success(self):
        lo = self.region["pos"] - self.region["size"]
        hi = self.region["pos"] + self.region["size"]
        return self.offset is None and bool(np.all(self.obj["pos"] > lo) and np.all(self.obj["pos"] < hi))


@pytest.mark.parametrize("funnel", [False, True])
@pytest.mark.parametrize(("obj_pos", "yaw"), [([-0.12, -0.24, 0.02], 0.0), ([0.1, -0.1, 0.02], 1.1)])
def test_place_skill_puts_the_object_in_the_basket(obj_pos, yaw, funnel):
    world = KinematicWorld(obj_pos, yaw)
    skill = PlaceSkill(Place("cheese_1", "basket_1_contain_region", "in"), funnel)
    phases = []
    for _ in range(300):
        action = skill.act(world.priv())
        assert action.shape == (7,) and np.all(np.abs(action) <= 1.0)
        world.step(action)
        if not phases or phases[-1] != skill.phase:
            phases.append(skill.phase)
        if world.success():
            break
    assert world.success(), phases
    assert phases[:6] == ["approach", "descend", "close", "lift", "transport", "lower"]


@pytest.mark.parametrize(("obj_pos", "yaw"), [([-0.12, -0.24, 0.02], 0.0), ([0.1, -0.1, 0.02], 1.1)])
def test_funnel_approach_keeps_moving_into_the_descent(obj_pos, yaw):
    """The plain expert creeps onto the hover point and then dives; the funnel's position labels stay
    large until the descent, which starts no faster than the approach ended."""
    labels = {}
    for funnel in (False, True):
        world = KinematicWorld(obj_pos, yaw)
        skill = PlaceSkill(Place("cheese_1", "basket_1_contain_region", "in"), funnel)
        approach, descent = [], []
        while skill.phase in ("approach", "descend") and len(approach) < 200:
            phase = skill.phase
            action = skill.act(world.priv())
            (approach if phase == "approach" else descent).append(float(np.abs(action[:3]).max()))
            world.step(action)
        labels[funnel] = approach, descent
    (plain_approach, plain_descent), (funnel_approach, funnel_descent) = labels[False], labels[True]
    assert plain_approach[-1] < 0.2 and plain_descent[0] == 1.0  # creep, then full speed
    assert min(funnel_approach) > 0.5 and funnel_descent[0] <= funnel_approach[-1] + 1e-9


def test_expert_funnel_is_a_registered_variant():
    policy = make_policy("expert-funnel", PolicyContext(protocol=protocols().get("openvla")))
    assert policy.needs_privileged and policy.funnel and not make_policy("expert", PolicyContext(protocol=protocols().get("openvla"))).funnel


def test_place_skill_retries_when_the_object_stays_behind():
    world = KinematicWorld([0.05, -0.1, 0.02])
    skill = PlaceSkill(Place("cheese_1", "basket_1_contain_region", "in"))
    slipped = False
    for _ in range(400):
        world.step(skill.act(world.priv()))
        if skill.phase == "lift" and world.offset is not None and not slipped:
            world.offset = None  # the grasp slips once
            slipped = True
        if world.success():
            break
    assert slipped and skill.attempts == 1 and world.success()


# --- the registered policy -------------------------------------------------------------------------


def test_expert_is_registered_and_needs_no_images():
    policy = make_policy("expert", PolicyContext(protocol=protocols().get("openvla")))
    assert policy.needs_privileged and not policy.uses_images


def test_expert_refuses_observations_without_privileged_state():
    policy = make_policy("expert", PolicyContext(protocol=protocols().get("openvla")))
    episode = Episode(suite="libero_object", task_id=0, init_idx=0, seed=0, max_steps=10)
    policy.start_episode(episode)
    obs = Observation(images={}, state=np.zeros(8), instruction="x", episode=episode.key)
    with pytest.raises(VlaBenchError, match="privileged"):
        policy.infer([obs])


def test_expert_batches_episodes_independently():
    policy = make_policy("expert", PolicyContext(protocol=protocols().get("openvla")))
    worlds = [KinematicWorld([-0.12, -0.24, 0.02]), KinematicWorld([0.1, -0.1, 0.02], 1.1)]
    keys = ["libero_object/1/0", "libero_object/1/1"]
    for step in range(300):
        observations = [
            Observation(images={}, state=np.zeros(8), instruction="x", episode=k, step=step, privileged=w.priv())
            for k, w in zip(keys, worlds)
        ]
        actions = policy.infer(observations)
        assert actions.shape == (2, 7)
        for world, action in zip(worlds, actions):
            if not world.success():
                world.step(action)
    assert all(w.success() for w in worlds)


# --- articulation targets from LIBERO's ranges ------------------------------------------------------


WOODEN_CABINET = {"default_open_ranges": [-0.16, -0.14], "default_close_ranges": [0.0, 0.005]}
SHORT_CABINET = {"default_open_ranges": [0.10, 0.16], "default_close_ranges": [-0.005, 0.0]}
MICROWAVE = {"default_open_ranges": [-2.094, -1.3], "default_close_ranges": [-0.005, 0.0]}
STOVE = {"default_turnon_ranges": [0.5, 2.1], "default_turnoff_ranges": [-0.005, 0.0]}


@pytest.mark.parametrize(
    ("ranges", "state", "holds", "fails"),
    [
        (WOODEN_CABINET, "open", -0.15, -0.13),  # LIBERO: open iff qpos < -0.14
        (WOODEN_CABINET, "close", 0.003, -0.001),  # close iff qpos > 0.0
        (SHORT_CABINET, "open", 0.11, 0.09),  # open iff qpos > 0.10
        (SHORT_CABINET, "close", -0.001, 0.001),  # close iff qpos < 0.0
        (MICROWAVE, "open", -1.5, -1.2),
        (MICROWAVE, "close", -0.001, -0.01),
        (STOVE, "turnon", 0.6, 0.4),
        (STOVE, "turnoff", -0.001, 0.1),
    ],
)
def test_joint_goals_match_libero_predicates(ranges, state, holds, fails):
    goal = joint_goal(state, "j", ranges)
    assert satisfied(goal, holds) and not satisfied(goal, fails)
    assert satisfied(goal, goal.target)  # the commanded target is past the threshold


def test_joint_goal_without_ranges_is_an_error():
    with pytest.raises(ValueError, match="ranges"):
        joint_goal("turnon", "j", WOODEN_CABINET)


def test_closed_container_is_opened_before_placing_into_it():
    goals = [Place("bowl_1", "cabinet_1_top_region", "in")]
    assert with_preconditions(goals, {"cabinet_1_top_region"}) == [Articulate("cabinet_1_top_region", "open"), goals[0]]
    assert with_preconditions(goals, set()) == goals
    explicit = [Articulate("cabinet_1_top_region", "open"), goals[0]]
    assert with_preconditions(explicit, {"cabinet_1_top_region"}) == explicit


def test_handle_is_the_part_sticking_out_along_the_opening_direction():
    face = box_corners_at([0.0, 0.0, 1.0], [0.1, 0.005, 0.03])
    handle = box_corners_at([0.0, 0.03, 1.0], [0.04, 0.005, 0.008])
    points = extreme_points(np.stack([face, handle]), np.array([0.0, 1.0, 0.0]), 0.015)
    box = points_box(points)
    assert box.center == pytest.approx([0.0, 0.03, 1.0], abs=1e-9)
    assert sorted(box.half_widths) == pytest.approx([0.005, 0.04])


def box_corners_at(center, half):
    return np.asarray(center) + box_corners(-np.asarray(half), np.asarray(half))


# --- plumbing: a policy that needs privileged state gets envs built with it -------------------------


def test_evaluate_builds_privileged_envs_only_for_policies_that_need_them(tmp_path, monkeypatch):
    from vla_bench.config import EvalConfig
    from vla_bench.envs import make_env
    from vla_bench.evaluate import evaluate

    specs = []

    def recording_make_env(spec):
        specs.append(spec)
        return make_env("fake", spec)

    config = dict(suite="libero_object", tasks="0", trials=1, env="fake", progress=False, workers=0)  # in-process
    evaluate(EvalConfig(policy="zero", output=str(tmp_path / "zero"), **config), env_factory=recording_make_env)
    assert [s.privileged for s in specs] == [False]
    # The fake env has no simulator state: the expert says so instead of acting blind.
    with pytest.raises(VlaBenchError, match="privileged"):
        evaluate(EvalConfig(policy="expert", output=str(tmp_path / "expert"), **config), env_factory=recording_make_env)
    assert [s.privileged for s in specs] == [False, True]
