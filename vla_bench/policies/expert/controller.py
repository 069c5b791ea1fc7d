"""The expert's per-episode controller: a state machine per subgoal, servoing the end effector
with OSC_POSE delta actions computed from privileged state each step."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
from scipy.spatial.transform import Rotation

from vla_bench.policies.expert.geometry import (
    Grasp,
    WorldBox,
    carry_height,
    plan_grasps,
    points_box,
    world_box,
    yaw_error,
)
from vla_bench.policies.expert.goals import Articulate, Place, Subgoal

POS_GAIN = 20.0  # action per metre of position error (OSC scales an action of 1 to 5 cm)
ROT_GAIN = 2.0  # action per radian of orientation error (OSC scales an action of 1 to 0.5 rad)
OPEN, CLOSE = -1.0, 1.0
HOVER = 0.08  # approach height above the grasp point
# The funnel approach (policy `expert-funnel`): over the last FUNNEL_XY (m) of the approach the hover
# height sinks in proportion to the remaining xy and yaw error (reaching the grasp height at zero error),
# so the arm descends while it aligns instead of stopping above the object and then diving.
FUNNEL_XY = 0.03
FUNNEL_YAW = 0.4
TRAVEL_CLEARANCE = 0.05  # fingertips pass this far above the tops of bodies on the way
POS_TOL = 0.008
YAW_TOL = 0.08
GRIP_STEPS = 10  # steps to let the fingers close or open
STUCK_STEPS = 40  # give up waiting on a motion after this many steps
STALL_WINDOW = 5  # steps over which a motion counts as blocked ...
STALL_DISTANCE = 0.003  # ... if the end effector moved less than this (m)
MAX_ATTEMPTS = 4
RIM_CLEARANCE = 0.06  # a rim grasp point this far from other things is as good as any
FOOTPRINT_LIMIT = 0.35  # bodies wider than this (tables, floors) are not obstacles to carry over


# The Panda's fingers close along the x axis of robosuite's end-effector (grip) site frame.


def servo(priv: Mapping[str, Any], target: np.ndarray, close_dir: np.ndarray | None, gripper: float) -> np.ndarray:
    """One action moving the fingertip centre toward `target`, the gripper pointing down with its
    fingers closing along `close_dir` (None: keep the current yaw)."""
    rot = np.asarray(priv["eef_mat"])
    finger = rot[:2, 0] if close_dir is None else np.asarray(close_dir, dtype=np.float64)[:2]
    return servo_pose(priv, target, np.array([finger[0], finger[1], 0.0]), np.array([0.0, 0.0, -1.0]), gripper)


def servo_pose(
    priv: Mapping[str, Any], target: np.ndarray, finger: np.ndarray, approach: np.ndarray, gripper: float
) -> np.ndarray:
    """One action toward `target` with the gripper pointing along `approach` and its fingers
    closing along `finger` (perpendicular to `approach`; its sign does not matter)."""
    eef, rot = np.asarray(priv["eef_pos"]), np.asarray(priv["eef_mat"])
    action = np.zeros(7)
    move = POS_GAIN * (np.asarray(target) - eef)
    action[:3] = move / max(1.0, float(np.max(np.abs(move))))  # scaled, not clipped: straight paths
    z_axis = np.asarray(approach, dtype=np.float64)
    z_axis = z_axis / max(np.linalg.norm(z_axis), 1e-9)
    x_axis = np.asarray(finger, dtype=np.float64)
    x_axis = x_axis - z_axis * float(x_axis @ z_axis)
    x_axis = x_axis / max(np.linalg.norm(x_axis), 1e-9)
    if float(x_axis @ rot[:, 0]) < 0:  # a half turn grips the same: take the nearer sign
        x_axis = -x_axis
    desired = np.column_stack([x_axis, np.cross(z_axis, x_axis), z_axis])
    error = Rotation.from_matrix(desired @ rot.T).as_rotvec()
    action[3:6] = np.clip(ROT_GAIN * error, -1.0, 1.0)
    action[6] = gripper
    return action


def finger_yaw_error(priv: Mapping[str, Any], close_dir: np.ndarray) -> float:
    """How far (rad) the fingers' closing direction is from `close_dir`, about the vertical."""
    return abs(yaw_error(np.asarray(priv["eef_mat"])[:2, 0], close_dir))


@dataclasses.dataclass
class Target:
    """Where a placed object must end up: its xy, the height its bottom is released at."""

    xy: np.ndarray
    release_bottom: float
    tolerance: float  # how far (xy) the object may be from `xy` and still count


def region_half_size(site: Mapping[str, Any]) -> np.ndarray:
    return np.abs(np.asarray(site["mat"]) @ np.asarray(site["size"], dtype=np.float64))


def place_target(priv: Mapping[str, Any], goal: Place, held: WorldBox) -> Target:
    """Where to put the object for an On / In predicate, from the target's geometry."""
    sites, bodies = priv["sites"], priv["bodies"]
    if goal.target in sites:
        site = sites[goal.target]
        half = region_half_size(site)
        pos = np.asarray(site["pos"])
        tolerance = float(max(min(half[0], half[1]) - 0.01, 0.01))
        if goal.relation == "in":
            # LIBERO tests the object's origin inside the region box: drop it from low in the box.
            return Target(pos[:2].copy(), float(pos[2] - half[2]) + 0.03, tolerance)
        return Target(pos[:2].copy(), float(pos[2] + half[2]) + 0.01, tolerance)
    body = bodies[goal.target]
    box = world_box(body)
    # LIBERO's On(a, b) for a body b: a within 3 cm (xy) of b's origin, touching it.
    return Target(np.asarray(body["pos"])[:2].copy(), box.top + 0.01, 0.02)


def obstacle_tops(
    priv: Mapping[str, Any], held: str, start: np.ndarray, end: np.ndarray, include_fixtures: bool = True
) -> list[float]:
    """Top heights of bodies near the straight path from `start` to `end` (xy). A fixture's top
    counts its moving parts where they are now (an opened drawer)."""
    tops: list[float] = []
    boxes: list[WorldBox] = []
    seg = end - start
    length2 = max(float(seg @ seg), 1e-9)
    for name, body in priv["bodies"].items():
        if name == held or body["box"] is None or (body["fixture"] and not include_fixtures):
            continue
        boxes.append(world_box(body))
    if include_fixtures:
        # Moving parts where they are now: an opened drawer sticks out of its cabinet's box.
        boxes.extend(points_box(joint["geoms"]) for joint in priv.get("joints", {}).values() if len(joint["geoms"]))
    for box in boxes:
        reach = float(np.max(box.half_widths))
        if reach > FOOTPRINT_LIMIT:
            continue
        t = float(np.clip((box.center[:2] - start) @ seg / length2, 0.0, 1.0))
        distance = float(np.linalg.norm(box.center[:2] - (start + t * seg)))
        if distance < reach + 0.08:
            tops.append(box.top)
    return tops


def clearance(priv: Mapping[str, Any], held: str, point: np.ndarray, below: float) -> float:
    """Horizontal distance from `point` to the footprint edge of the nearest other body (or moving
    part) that rises above height `below`; large when nothing is near."""
    boxes = [world_box(b) for n, b in priv["bodies"].items() if n != held and b["box"] is not None]
    boxes += [points_box(j["geoms"]) for j in priv.get("joints", {}).values() if len(j["geoms"])]
    best = 1.0
    for box in boxes:
        if box.top < below or float(np.max(box.half_widths)) > FOOTPRINT_LIMIT:
            continue
        offset = point[:2] - box.center[:2]
        outside = np.maximum(np.abs(box.axes @ offset) - box.half_widths, 0.0)
        best = min(best, float(np.linalg.norm(outside)))
    return best


def choose_grasp(priv: Mapping[str, Any], held: str, box: WorldBox) -> Grasp:
    """The grasp on `held` whose fingers are farthest from other things (ties: the plan's own order)."""
    grasps = plan_grasps(box, np.asarray(priv["robot_base"]))
    if len(grasps) == 1:
        return grasps[0]
    scores = [min(clearance(priv, held, g.point, g.point[2] - 0.02), RIM_CLEARANCE) for g in grasps]
    return grasps[int(np.argmax(scores))]


class PlaceSkill:
    """Pick `goal.obj` and put it on / in `goal.target`; retries the grasp if the object slips."""

    def __init__(self, goal: Place, funnel: bool = False) -> None:
        self.goal = goal
        self.funnel = funnel
        self.phase = "approach"
        self.steps = 0
        self.attempts = 0
        self.grasp: Grasp | None = None
        self.grasp_obj_z = 0.0
        self.planned_at = np.full(3, np.inf)
        self.home: np.ndarray | None = None
        self.travel_z = 0.0
        self.carry_z = 0.0
        self.done = False
        self._trail: list[np.ndarray] = []

    def _go(self, phase: str) -> None:
        self.phase, self.steps = phase, 0
        self._trail = []

    def _stalled(self, eef: np.ndarray, window: int = 0) -> bool:
        """The end effector has barely moved over the last few steps of this phase (blocked)."""
        window = window or STALL_WINDOW
        self._trail.append(eef.copy())
        if len(self._trail) <= window:
            return False
        return bool(np.linalg.norm(self._trail[-1] - self._trail[-1 - window]) < STALL_DISTANCE)

    def _retry(self) -> None:
        self.attempts += 1
        self.planned_at = np.full(3, np.inf)  # plan the next grasp afresh
        self._go("reopen" if self.attempts < MAX_ATTEMPTS else "giveup")

    def act(self, priv: Mapping[str, Any]) -> np.ndarray:
        self.steps += 1
        eef = np.asarray(priv["eef_pos"])
        body = priv["bodies"][self.goal.obj]
        box = world_box(body)
        obj_pos = np.asarray(body["pos"])
        if self.phase == "approach" and (self.grasp is None or np.linalg.norm(obj_pos - self.planned_at) > 0.01):
            # Plan once per approach (and again if the object moved): re-choosing every step
            # would let the choice flicker between equally good grasps.
            self.grasp = choose_grasp(priv, self.goal.obj, box)
            self.planned_at = obj_pos.copy()
            hover = np.array([*self.grasp.point[:2], self.grasp.point[2] + HOVER])
            tops = obstacle_tops(priv, self.goal.obj, eef[:2], hover[:2], include_fixtures=True)
            self.travel_z = max(hover[2], max(tops, default=0.0) + TRAVEL_CLEARANCE)
        grasp = self.grasp
        assert grasp is not None or self.phase in ("reopen", "giveup")

        if self.home is None:
            self.home = eef.copy()
        if self.phase == "home":
            # Blocked on the way (a joint limit, a collision): back off to where the skill began.
            if np.linalg.norm(eef - self.home) < 0.03 or self.steps > STUCK_STEPS:
                self._go("approach")
                self.planned_at = np.full(3, np.inf)  # plan afresh
            return servo(priv, self.home, None, OPEN)
        if self.phase == "approach":
            far = np.linalg.norm(eef - np.array([*grasp.point[:2], grasp.point[2] + HOVER])) > 0.03
            if self._stalled(eef, window=10) and far:
                self._go("home")
                return servo(priv, self.home, None, OPEN)
            hover = np.array([*grasp.point[:2], grasp.point[2] + HOVER])
            target = hover
            offset = float(np.linalg.norm(eef[:2] - hover[:2]))
            yaw = finger_yaw_error(priv, grasp.close_dir)
            if offset > 0.03:
                # Cross above everything on the way (an opened drawer, a cabinet), rising first.
                target = np.array([*hover[:2], self.travel_z])
                if eef[2] < self.travel_z - 0.03 and offset > 0.06:
                    target = np.array([*eef[:2], self.travel_z])
            elif self.funnel:
                sink = float(np.clip(max(offset / FUNNEL_XY, yaw / FUNNEL_YAW), 0.0, 1.0))
                target = np.array([*hover[:2], grasp.point[2] + HOVER * sink])
            # the funnel reaches the descent already on its way down: only xy and yaw must be in tolerance
            level = self.funnel or abs(eef[2] - hover[2]) < 0.02
            if offset < POS_TOL and level and yaw < YAW_TOL:
                self._go("descend")
            return servo(priv, target, grasp.close_dir, OPEN)
        if self.phase == "descend":
            if np.linalg.norm(eef - grasp.point) < POS_TOL or self._stalled(eef) or self.steps > STUCK_STEPS:
                self._go("close")
            return servo(priv, grasp.point, grasp.close_dir, OPEN)
        if self.phase == "close":
            if self.steps >= GRIP_STEPS:
                self.grasp_obj_z = float(obj_pos[2])
                target = place_target(priv, self.goal, box)
                hang = float(eef[2] - box.bottom)
                tops = obstacle_tops(priv, self.goal.obj, eef[:2], target.xy)
                self.carry_z = max(carry_height(tops, hang), eef[2] + 0.05)
                self._go("lift")
            return servo(priv, grasp.point, grasp.close_dir, CLOSE)
        if self.phase == "lift":
            lift = np.array([*grasp.point[:2], self.carry_z])
            rise = eef[2] - grasp.point[2]
            if rise > 0.04 and obj_pos[2] - self.grasp_obj_z < 0.5 * rise:
                self._retry()  # the object stayed behind
            elif eef[2] > self.carry_z - 0.015 or self.steps > STUCK_STEPS:
                self._go("transport")
            return servo(priv, lift, grasp.close_dir, CLOSE)
        if self.phase == "transport":
            target = place_target(priv, self.goal, box)
            if self._dropped(priv, box):
                self._retry()
                return servo(priv, eef, None, OPEN)
            error = target.xy - obj_pos[:2]
            goal_pos = np.array([*(eef[:2] + error), self.carry_z])
            if np.linalg.norm(error) < min(POS_TOL, target.tolerance) or self.steps > 3 * STUCK_STEPS:
                self._go("lower")
            return servo(priv, goal_pos, grasp.close_dir, CLOSE)
        if self.phase == "lower":
            target = place_target(priv, self.goal, box)
            if self._dropped(priv, box):
                self._retry()
                return servo(priv, eef, None, OPEN)
            error = target.xy - obj_pos[:2]
            drop = target.release_bottom - box.bottom
            goal_pos = np.array([*(eef[:2] + error), eef[2] + drop])
            if drop > -0.005 or self._stalled(eef) or self.steps > STUCK_STEPS:
                self._go("release")
            return servo(priv, goal_pos, grasp.close_dir, CLOSE)
        if self.phase == "release":
            if self.steps >= GRIP_STEPS:
                self._go("retreat")
            return servo(priv, eef, None, OPEN)
        if self.phase == "retreat":
            up = np.array([*eef[:2], self.carry_z])
            if eef[2] > self.carry_z - 0.02 or self.steps > STUCK_STEPS:
                if self._placed(priv):
                    self.done = True
                else:
                    self._retry()
            return servo(priv, up, None, OPEN)
        if self.phase == "reopen":
            # Open and back off upward before planning a new grasp.
            up = np.array([*eef[:2], max(eef[2], box.top + HOVER)])
            if self.steps >= GRIP_STEPS and eef[2] > box.top + HOVER - 0.03:
                self._go("approach")
            return servo(priv, up, None, OPEN)
        return servo(priv, eef, None, OPEN)  # giveup: hold still

    def _dropped(self, priv: Mapping[str, Any], box: WorldBox) -> bool:
        """The object is no longer between the fingers (it fell or was never held)."""
        eef = np.asarray(priv["eef_pos"])
        return bool(eef[2] - box.top > 0.03 or np.linalg.norm(eef[:2] - box.center[:2]) > max(box.half_widths) + 0.03)

    def _placed(self, priv: Mapping[str, Any]) -> bool:
        body = priv["bodies"][self.goal.obj]
        target = place_target(priv, self.goal, world_box(body))
        return bool(np.linalg.norm(np.asarray(body["pos"])[:2] - target.xy) < target.tolerance + 0.01)


class HoldSkill:
    """Holds still (used once every subgoal is done, or for goals the expert cannot act on)."""

    done = False

    def __init__(self, goal: Subgoal | None = None) -> None:
        self.goal = goal

    def act(self, priv: Mapping[str, Any]) -> np.ndarray:
        return servo(priv, np.asarray(priv["eef_pos"]), None, OPEN)


def make_skill(goal: Subgoal, funnel: bool = False):
    """The skill executing `goal`; `funnel`: pick-and-place approaches descend while aligning."""
    if isinstance(goal, Place):
        return PlaceSkill(goal, funnel)
    if isinstance(goal, Articulate):
        from vla_bench.policies.expert.articulate import ArticulateSkill

        return ArticulateSkill(goal)
    raise TypeError(goal)
