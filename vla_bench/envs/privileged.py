"""Privileged simulator state of a LIBERO env, for scripted policies (the `expert`).

Everything here is read from the MuJoCo sim and LIBERO's parsed BDDL problem; nothing is written.
Object geometry is summarised as a box in each object's body frame, taken from its collision geoms
once per scene (it does not change as the object moves).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _subtree_bodies(model, root: int) -> set[int]:
    bodies = {root}
    for body in range(root + 1, model.nbody):
        if int(model.body_parentid[body]) in bodies:
            bodies.add(body)
    return bodies


def geom_corners_world(model, data, geom: int) -> np.ndarray:
    """The 8 world-frame corners of one geom's local bounding box (MuJoCo's geom_aabb)."""
    center, half = model.geom_aabb[geom, :3], model.geom_aabb[geom, 3:]
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    local = center + signs * half
    return data.geom_xpos[geom] + local @ data.geom_xmat[geom].reshape(3, 3).T


def body_local_box(model, data, root: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(lo, hi) of the collision geoms of a body subtree, in the root body's frame; None if it has none."""
    bodies = _subtree_bodies(model, root)
    geoms = [
        g
        for g in range(model.ngeom)
        if int(model.geom_bodyid[g]) in bodies and (model.geom_contype[g] or model.geom_conaffinity[g])
    ]
    if not geoms:
        return None
    corners = np.concatenate([geom_corners_world(model, data, g) for g in geoms])
    rot = data.xmat[root].reshape(3, 3)
    local = (corners - data.xpos[root]) @ rot  # world -> body frame
    return local.min(axis=0), local.max(axis=0)


class PrivilegedReader:
    """Reads privileged state from a LIBERO domain env (`ControlEnv.env`) after every step."""

    def __init__(self, env) -> None:
        self.env = env
        self._boxes: dict[str, tuple[np.ndarray, np.ndarray] | None] | None = None

    def _geometry(self) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
        if self._boxes is None:
            env = self.env
            model, data = env.sim.model._model, env.sim.data._data
            self._boxes = {name: body_local_box(model, data, env.obj_body_id[name]) for name in env.obj_body_id}
        return self._boxes

    def reset(self) -> None:
        """Forget cached geometry (call after the scene is rebuilt)."""
        self._boxes = None

    def _joint(self, name: str) -> dict[str, Any]:
        """An articulation joint: type, position, world axis and anchor, and the world corners of
        the collision geoms it moves (a drawer with its handle, a door, a knob)."""
        import mujoco

        model, data = self.env.sim.model._model, self.env.sim.data._data
        joint = model.joint(name).id
        body = int(model.jnt_bodyid[joint])
        geoms = [
            g
            for g in range(model.ngeom)
            if int(model.geom_bodyid[g]) in _subtree_bodies(model, body) and (model.geom_contype[g] or model.geom_conaffinity[g])
        ]
        corners = np.stack([geom_corners_world(model, data, g) for g in geoms]) if geoms else np.zeros((0, 8, 3))
        kind = {int(mujoco.mjtJoint.mjJNT_SLIDE): "slide", int(mujoco.mjtJoint.mjJNT_HINGE): "hinge"}.get(
            int(model.jnt_type[joint]), "other"
        )
        return {
            "type": kind,
            "qpos": float(data.qpos[model.jnt_qposadr[joint]]),
            "range": np.array(model.jnt_range[joint]),
            "axis": np.array(data.xaxis[joint]),
            "anchor": np.array(data.xanchor[joint]),
            "geoms": corners,
        }

    def read(self) -> dict[str, Any]:
        env = self.env
        data = env.sim.data
        model = env.sim.model
        boxes = self._geometry()
        bodies: dict[str, dict[str, Any]] = {}
        for name, body in env.obj_body_id.items():
            box = boxes[name]
            bodies[name] = {
                "pos": np.array(data.body_xpos[body]),
                "mat": np.array(data.body_xmat[body]).reshape(3, 3),
                "box": None if box is None else (box[0].copy(), box[1].copy()),
                "fixture": name in env.fixtures_dict,
                "joints": [float(data.qpos[model.get_joint_qpos_addr(j)]) for j in _object_joints(env, name)],
                "joint_names": _object_joints(env, name),
                "articulation": _articulation_ranges(env, name),
            }
        sites: dict[str, dict[str, Any]] = {}
        for name, site in env.object_sites_dict.items():
            sites[name] = {
                "pos": np.array(data.get_site_xpos(name)),
                "mat": np.array(data.get_site_xmat(name)),
                "size": np.asarray(site.size, dtype=np.float64) if site.size is not None else None,
                "parent": site.parent_name,
                "joints": [float(data.qpos[model.get_joint_qpos_addr(j)]) for j in (site.joints or [])],
                "joint_names": list(site.joints or []),
            }
        robot = env.robots[0]
        joint_names = {j for b in bodies.values() for j in b["joint_names"]} | {j for t in sites.values() for j in t["joint_names"]}
        goal = env.parsed_problem["goal_state"]
        return {
            "goal": [tuple(str(a) for a in state) for state in goal],
            "goal_status": [bool(env._eval_predicate(state)) for state in goal],
            "joints": {name: self._joint(name) for name in sorted(joint_names)},
            "eef_pos": np.array(data.site_xpos[robot.eef_site_id]),
            "eef_mat": np.array(data.site_xmat[robot.eef_site_id]).reshape(3, 3),
            "gripper_qpos": np.array([data.qpos[i] for i in robot._ref_gripper_joint_pos_indexes]),
            "robot_joint_pos": np.array([data.qpos[i] for i in robot._ref_joint_pos_indexes]),
            "robot_base": np.array(data.body_xpos[model.body_name2id(robot.robot_model.root_body)]),
            "bodies": bodies,
            "sites": sites,
        }


def _object_joints(env, name: str) -> list[str]:
    """An object's articulation joints (hinges and slides; not the free joint of a loose object)."""
    import mujoco

    model = env.sim.model
    joints = getattr(env.get_object(name), "joints", None) or []
    return [j for j in joints if int(model.jnt_type[model.joint_name2id(j)]) != mujoco.mjtJoint.mjJNT_FREE]


def _articulation_ranges(env, name: str) -> dict[str, list[float]]:
    """LIBERO's joint ranges for open / close / turn on / turn off of an articulated object."""
    properties = getattr(env.get_object(name), "object_properties", None) or {}
    ranges = properties.get("articulation", {}) if isinstance(properties, dict) else {}
    return {key: [float(v) for v in value] for key, value in ranges.items() if isinstance(value, (list, tuple))}
