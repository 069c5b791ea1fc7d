"""Skills for articulated objects: pull / push drawers (slide joints), twist knobs (hinges with a
small vertical grip), push doors shut (other hinges). Targets come from LIBERO's joint ranges."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from scipy.spatial.transform import Rotation

from vla_bench.policies.expert.controller import (
    CLOSE,
    GRIP_STEPS,
    OPEN,
    POS_TOL,
    STUCK_STEPS,
    YAW_TOL,
    finger_yaw_error,
    servo,
    servo_pose,
)
from vla_bench.policies.expert.geometry import extreme_points, points_box, top_points
from vla_bench.policies.expert.goals import Articulate

HANDLE_DEPTH = 0.03  # geoms within this of the outermost one along the opening direction form the handle
KNOB_RADIUS = 0.08  # a hinge whose moving geoms stay within this of the axis is a knob
PRE_GRASP = 0.10  # stand-off in front of a handle before moving in to grasp it
TWIST_STEP = 0.35  # radians of yaw commanded ahead while twisting
MAX_ATTEMPTS = 3


@dataclasses.dataclass(frozen=True)
class JointGoal:
    """Which joint to move and where: `sign` is +1 when the goal lies at larger qpos."""

    joint: str
    target: float
    threshold: float  # the goal holds once sign * (qpos - threshold) > 0
    sign: float


def _ranges(priv: Mapping[str, Any], name: str) -> tuple[list[str], dict[str, list[float]]]:
    """(joint names, LIBERO articulation ranges) of an articulated body or of one of its region sites."""
    if name in priv["sites"]:
        site = priv["sites"][name]
        parent = priv["bodies"].get(site["parent"], {})
        return list(site["joint_names"]), parent.get("articulation", {})
    body = priv["bodies"][name]
    return list(body["joint_names"]), body.get("articulation", {})


def joint_goal(state: str, joint: str, ranges: Mapping[str, list[float]]) -> JointGoal:
    """The target of open / close / turnon / turnoff for one joint, from LIBERO's ranges: "open"
    holds past the open range's edge nearest the closed range, "close" past the closed range's
    edge nearest the open range, on the far side (the same for turn on / off)."""
    positive, negative = {"open": ("open", "close"), "close": ("open", "close"), "turnon": ("turnon", "turnoff"), "turnoff": ("turnon", "turnoff")}[state]
    on_range = ranges.get(f"default_{positive}_ranges") or []
    off_range = ranges.get(f"default_{negative}_ranges") or []
    if not on_range or not off_range:
        raise ValueError(f"no {positive}/{negative} ranges for {joint}")
    on_side = 1.0 if np.mean(on_range) > np.mean(off_range) else -1.0
    if state in ("open", "turnon"):
        near = min(on_range) if on_side > 0 else max(on_range)
        far = max(on_range) if on_side > 0 else min(on_range)
        target = near + on_side * min(0.75 * abs(far - near), 0.25)
        return JointGoal(joint, target, near, on_side)
    edge = max(off_range) if on_side > 0 else min(off_range)
    return JointGoal(joint, edge - on_side * 0.02, edge, -on_side)


def satisfied(goal: JointGoal, qpos: float) -> bool:
    return goal.sign * (qpos - goal.threshold) > 0


class ArticulateSkill:
    """Moves one joint of an articulated object to the goal state, picking the motion from the
    joint: drawers are pulled by the handle or pushed shut, knobs twisted, doors pushed."""

    def __init__(self, goal: Articulate) -> None:
        self.goal = goal
        self.phase = "plan"
        self.steps = 0
        self.attempts = 0
        self.done = False
        self.jgoal: JointGoal | None = None
        self.kind = ""
        self.grasp_point = np.zeros(3)
        self.close_dir = np.array([1.0, 0.0])
        self.direction = np.zeros(3)  # world motion direction for slides
        self.hover_z = 0.0
        self.finger = np.array([1.0, 0.0, 0.0])
        self.approach = np.array([0.0, 0.0, -1.0])
        self.pre_grasp = np.zeros(3)
        self.home: np.ndarray | None = None  # where the skill began; the arm unwinds there
        self.start = np.zeros(3)
        self._trail: list[np.ndarray] = []

    def _go(self, phase: str) -> None:
        self.phase, self.steps, self._trail = phase, 0, []

    def _stalled(self, eef: np.ndarray, window: int = 6, distance: float = 0.003) -> bool:
        self._trail.append(eef.copy())
        return len(self._trail) > window and bool(np.linalg.norm(self._trail[-1] - self._trail[-1 - window]) < distance)

    def _plan(self, priv: Mapping[str, Any]) -> None:
        joints, ranges = _ranges(priv, self.goal.obj)
        goals = [joint_goal(self.goal.state, j, ranges) for j in joints]
        pending = [g for g in goals if not satisfied(g, priv["joints"][g.joint]["qpos"])]
        self.jgoal = (pending or goals)[0]
        joint = priv["joints"][self.jgoal.joint]
        corners, axis, anchor = joint["geoms"], np.asarray(joint["axis"]), np.asarray(joint["anchor"])
        delta_sign = 1.0 if self.jgoal.target > joint["qpos"] else -1.0
        if joint["type"] == "slide":
            self.direction = axis * delta_sign
            # The handle sticks out along the opening direction: the side the drawer moves toward
            # when opened. Pull it when opening, push the drawer front when closing.
            open_dir = self.direction if self.goal.state in ("open", "turnon") else -self.direction
            handle = points_box(extreme_points(corners, open_dir, HANDLE_DEPTH))
            horizontal = open_dir[:2] / max(np.linalg.norm(open_dir[:2]), 1e-9)
            if self.goal.state in ("open", "turnon"):
                # Grasp the handle from the front, gripper level, fingers closing vertically.
                self.kind = "pull"
                self.grasp_point = handle.center.copy()
                self.pre_grasp = handle.center + np.array([*(horizontal * PRE_GRASP), 0.0])
                self.finger = np.array([0.0, 0.0, 1.0])
                self.approach = np.array([-horizontal[0], -horizontal[1], 0.0])
            else:
                self.kind = "push"
                self.grasp_point = handle.center + np.array([*(horizontal * 0.05), 0.0])
                self.close_dir = np.array([-horizontal[1], horizontal[0]])
            self.hover_z = max(handle.top, float(np.max(corners[..., 2]))) + 0.06
            return
        radial = np.linalg.norm(np.cross(corners.reshape(-1, 3) - anchor, axis), axis=1)
        if joint["type"] == "hinge" and abs(axis[2]) > 0.9 and radial.max() < KNOB_RADIUS:
            self.kind = "twist"
            ridge = points_box(top_points(corners, 0.012))
            self.grasp_point = np.array([ridge.center[0], ridge.center[1], ridge.top - 0.012])
            self.close_dir = ridge.axes[int(np.argmin(ridge.half_widths))]
            self.hover_z = ridge.top + 0.06
            self.twist_sign = delta_sign * float(np.sign(axis[2]))
            return
        self.kind = "door"
        self.hover_z = float(np.max(corners[..., 2])) + 0.06
        self.door_sign = delta_sign

    def _door_contact(self, priv: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """A point on the door at 70% of its width, mid height, and the tangent it moves along
        toward the goal."""
        joint = priv["joints"][self.jgoal.joint]
        corners = joint["geoms"].reshape(-1, 3)
        axis, anchor = np.asarray(joint["axis"]), np.asarray(joint["anchor"])
        offsets = corners - anchor
        offsets_h = offsets - np.outer(offsets @ axis, axis)
        far = offsets_h[np.argmax(np.linalg.norm(offsets_h, axis=1))]
        point = anchor + 0.7 * far
        point[2] = float((corners[:, 2].min() + corners[:, 2].max()) / 2)
        tangent = np.cross(axis, far / max(np.linalg.norm(far), 1e-9)) * self.door_sign
        return point, tangent

    def _pose(self, priv, target, gripper):
        return servo_pose(priv, target, self.finger, self.approach, gripper)

    def _pose_error(self, priv) -> float:
        """Angle (rad) between the gripper's orientation and the level grasp orientation."""
        rot = np.asarray(priv["eef_mat"])
        x_axis = self.finger if float(self.finger @ rot[:, 0]) >= 0 else -self.finger
        desired = np.column_stack([x_axis, np.cross(self.approach, x_axis), self.approach])
        return float(np.linalg.norm(Rotation.from_matrix(desired @ rot.T).as_rotvec()))

    def _pull(self, priv: Mapping[str, Any], eef: np.ndarray, joint: Mapping[str, Any]) -> np.ndarray:
        if self.phase == "approach":
            target = self.pre_grasp
            if self._pose_error(priv) > 0.3:  # turn the gripper level before closing in
                target = np.array([*eef[:2], max(eef[2], self.pre_grasp[2])])
            if np.linalg.norm(eef - self.pre_grasp) < 1.5 * POS_TOL and self._pose_error(priv) < 0.1:
                self._go("descend")
            return self._pose(priv, target, OPEN)
        if self.phase == "descend":
            if np.linalg.norm(eef - self.grasp_point) < POS_TOL or self._stalled(eef) or self.steps > STUCK_STEPS:
                self._go("grip")
            return self._pose(priv, self.grasp_point, OPEN)
        if self.phase == "grip":
            if self.steps >= GRIP_STEPS:
                self._go("work")
                self.start = eef.copy()
            return self._pose(priv, self.grasp_point, CLOSE)
        if self.phase == "work":
            if self.steps > 4 * STUCK_STEPS or (self.steps > 10 and self._stalled(eef, 8, 0.002)):
                self._retry()
                return self._pose(priv, eef, OPEN)
            remaining = abs(self.jgoal.target - joint["qpos"]) + 0.03
            target = eef + self.direction * remaining
            target[2] = self.start[2]
            return self._pose(priv, target, CLOSE)
        if self.phase == "release":
            if self.steps >= GRIP_STEPS // 2:
                self._go("retreat")
            return self._pose(priv, eef, OPEN)
        if self.phase == "retreat":
            if self.steps == 1:
                self.back = eef - self.approach * 0.08
            if np.linalg.norm(eef - self.back) < 2 * POS_TOL or self.steps > 15:
                self._go("rise")
            return self._pose(priv, self.back, OPEN)
        if self.phase == "rise":
            # Leave pointing down again, away from the handle, before the next skill moves on.
            down = float(np.arccos(np.clip(-np.asarray(priv["eef_mat"])[2, 2], -1.0, 1.0)))
            home = self.home
            if (np.linalg.norm(eef - home) < 0.03 and down < 0.1) or self.steps > STUCK_STEPS:
                self.done = satisfied(self.jgoal, joint["qpos"])
                if self.done:
                    self._go("hold")
                else:
                    self._retry()
            # Back to where the skill started: the arm's joints unwind from the level grasp there.
            # Come back level first, then turn down: turning about the fingertips out there
            # swings the wrist up and stretches the arm into its elbow singularity.
            if np.linalg.norm(eef[:2] - home[:2]) > 0.05:
                return self._pose(priv, np.array([*home[:2], eef[2]]), OPEN)
            return servo(priv, home, None, OPEN)
        if self.phase == "reopen":
            if self.steps >= GRIP_STEPS:
                self._go("plan")
            return self._pose(priv, eef - self.approach * 0.05, OPEN)
        return servo(priv, eef, None, OPEN)

    def act(self, priv: Mapping[str, Any]) -> np.ndarray:
        self.steps += 1
        eef = np.asarray(priv["eef_pos"])
        if self.phase == "plan":
            if self.home is None:
                self.home = eef.copy()
            self._plan(priv)
            self._go("approach")
        joint = priv["joints"][self.jgoal.joint]
        if satisfied(self.jgoal, joint["qpos"]) and self.phase not in ("release", "retreat", "rise", "hold", "giveup"):
            self._go("release")
        gripper = CLOSE if self.kind in ("push", "door") else OPEN

        if self.kind == "door" and self.phase in ("approach", "descend", "work"):
            return self._door(priv, eef)
        if self.kind == "pull":
            return self._pull(priv, eef, joint)
        if self.phase == "approach":
            hover = np.array([*self.grasp_point[:2], self.hover_z])
            target = hover
            if eef[2] <= self.hover_z - 0.04 and np.linalg.norm(eef[:2] - hover[:2]) >= 0.03:
                target = np.array([*eef[:2], self.hover_z])  # rise first, then cross
            if np.linalg.norm(eef[:2] - hover[:2]) < POS_TOL and self._yaw_ok(priv):
                self._go("descend")
            return servo(priv, target, self.close_dir, gripper)
        if self.phase == "descend":
            if np.linalg.norm(eef - self.grasp_point) < POS_TOL or self._stalled(eef) or self.steps > STUCK_STEPS:
                self._go("grip" if self.kind in ("pull", "twist") else "work")
                self.start = eef.copy()
            return servo(priv, self.grasp_point, self.close_dir, gripper)
        if self.phase == "grip":
            if self.steps >= GRIP_STEPS:
                self._go("work")
                self.start = eef.copy()
            return servo(priv, self.grasp_point, self.close_dir, CLOSE)
        if self.phase == "work":
            if self.steps > 4 * STUCK_STEPS or (self.steps > 10 and self._stalled(eef, 8, 0.002)):
                self._retry()
                return servo(priv, eef, None, OPEN)
            if self.kind == "twist":
                current = np.asarray(priv["eef_mat"])[:2, 0]
                angle = self.twist_sign * TWIST_STEP
                c, s = np.cos(angle), np.sin(angle)
                ahead = np.array([c * current[0] - s * current[1], s * current[0] + c * current[1]])
                return servo(priv, np.array([*self.grasp_point[:2], eef[2]]), ahead, CLOSE)
            remaining = abs(self.jgoal.target - joint["qpos"]) + 0.03
            target = eef + self.direction * remaining
            target[2] = self.start[2]
            return servo(priv, target, self.close_dir, CLOSE)
        if self.phase == "release":
            if self.steps >= GRIP_STEPS // 2:
                self._go("retreat")
            return servo(priv, eef, None, OPEN if self.kind in ("pull", "twist") else gripper)
        if self.phase == "retreat":
            up = np.array([*eef[:2], self.hover_z])
            if eef[2] > self.hover_z - 0.02 or self.steps > STUCK_STEPS:
                self.done = satisfied(self.jgoal, joint["qpos"])
                if not self.done:
                    self._retry()
                else:
                    self._go("hold")
            return servo(priv, up, None, OPEN)
        if self.phase == "reopen":
            up = np.array([*eef[:2], self.hover_z])
            if eef[2] > self.hover_z - 0.03 and self.steps >= GRIP_STEPS:
                self._go("plan")
            return servo(priv, up, None, OPEN)
        return servo(priv, eef, None, OPEN)

    def _yaw_ok(self, priv: Mapping[str, Any]) -> bool:
        return finger_yaw_error(priv, self.close_dir) < YAW_TOL

    def _retry(self) -> None:
        self.attempts += 1
        self._go("reopen" if self.attempts < MAX_ATTEMPTS else "giveup")

    def _door(self, priv: Mapping[str, Any], eef: np.ndarray) -> np.ndarray:
        point, tangent = self._door_contact(priv)
        behind = point - tangent * 0.05
        if self.phase == "approach":
            hover = np.array([*behind[:2], self.hover_z])
            target = hover if eef[2] > self.hover_z - 0.04 else np.array([*eef[:2], self.hover_z])
            if np.linalg.norm(eef[:2] - hover[:2]) < 2 * POS_TOL:
                self._go("descend")
            return servo(priv, target, None, CLOSE)
        if self.phase == "descend":
            if abs(eef[2] - behind[2]) < POS_TOL or self._stalled(eef) or self.steps > STUCK_STEPS:
                self._go("work")
            return servo(priv, behind, None, CLOSE)
        if self.steps > 4 * STUCK_STEPS:
            self._retry()
            return servo(priv, eef, None, OPEN)
        return servo(priv, point + tangent * 0.04, None, CLOSE)


def closed_containers(priv: Mapping[str, Any]) -> set[str]:
    """Region sites whose articulation joint is not open now (a closed drawer's inside)."""
    closed = set()
    for name, site in priv["sites"].items():
        if not site["joint_names"]:
            continue
        joints, ranges = _ranges(priv, name)
        try:
            goals = [joint_goal("open", j, ranges) for j in joints]
        except ValueError:
            continue
        if not any(satisfied(g, priv["joints"][g.joint]["qpos"]) for g in goals):
            closed.add(name)
    return closed
