"""Object geometry for grasping and placing, from privileged body boxes (pure numpy, no simulator).

A body is described by its world position `pos`, rotation `mat` (3x3) and a box (lo, hi) in its own
frame, covering its collision geoms. The gripper points straight down; its fingers close along a
horizontal direction, chosen per object from the box.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

MAX_GRIP_WIDTH = 0.07  # Panda fingers open to ~8 cm; leave a margin
RIM_INSET = 0.008  # grasp a wide object's wall this far inside its outer edge
GRASP_DEPTH = 0.025  # how far below the top the fingertip centre goes on a tall object
FLOOR_CLEARANCE = 0.012  # fingertip centre stays this high above an object's bottom


def box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The 8 corners (8, 3) of an axis-aligned box."""
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def world_corners(body: Mapping[str, Any]) -> np.ndarray:
    """World-frame corners of a body's box (8, 3)."""
    lo, hi = body["box"]
    return np.asarray(body["pos"]) + box_corners(np.asarray(lo), np.asarray(hi)) @ np.asarray(body["mat"]).T


@dataclasses.dataclass(frozen=True)
class WorldBox:
    """Summary of a body's extent in the world: footprint centre, z range, horizontal axes."""

    center: np.ndarray  # (3,) centre of the box in the world
    bottom: float
    top: float
    axes: np.ndarray  # (2, 2) unit horizontal directions of the box's two most horizontal axes
    half_widths: np.ndarray  # (2,) half extents of the footprint along `axes`

    @property
    def height(self) -> float:
        return self.top - self.bottom


def world_box(body: Mapping[str, Any]) -> WorldBox:
    """The world extent of a body's box, with its footprint along the box's horizontal axes."""
    lo, hi = (np.asarray(v, dtype=np.float64) for v in body["box"])
    mat = np.asarray(body["mat"], dtype=np.float64)
    corners = world_corners(body)
    center = np.asarray(body["pos"]) + mat @ ((lo + hi) / 2)
    # The two box axes closest to horizontal span the footprint.
    order = np.argsort(np.abs(mat[2, :]))[:2]
    axes, halves = [], []
    for i in order:
        direction = mat[:2, i]
        norm = np.linalg.norm(direction)
        direction = direction / norm if norm > 1e-6 else np.array([1.0, 0.0])
        axes.append(direction)
        projections = (corners[:, :2] - center[:2]) @ direction
        halves.append(float(np.max(np.abs(projections))))
    return WorldBox(center, float(corners[:, 2].min()), float(corners[:, 2].max()), np.array(axes), np.array(halves))


@dataclasses.dataclass(frozen=True)
class Grasp:
    """Where the fingertip centre goes and along which horizontal direction the fingers close."""

    point: np.ndarray  # (3,)
    close_dir: np.ndarray  # (2,) unit; sign does not matter
    rim: bool  # grasping the wall of a wide object rather than across the whole object


def plan_grasps(box: WorldBox, approach_from: np.ndarray) -> list[Grasp]:
    """Top-down grasps, best first: across the narrow side if it fits in the gripper; else on the
    wall of the object (a bowl's rim) at four points around it, fingers closing radially, the side
    facing `approach_from` (xy) first (measured best on libero_spatial's bowls)."""
    narrow = int(np.argmin(box.half_widths))
    grasp_z = max(box.top - GRASP_DEPTH, box.bottom + FLOOR_CLEARANCE, (box.top + box.bottom) / 2 - 0.01)
    grasp_z = min(grasp_z, box.top - 0.005)
    if 2 * box.half_widths[narrow] <= MAX_GRIP_WIDTH:
        point = np.array([box.center[0], box.center[1], grasp_z])
        return [Grasp(point, box.axes[narrow], rim=False)]
    away = box.center[:2] - np.asarray(approach_from[:2], dtype=np.float64)
    rim_z = max(box.top - 0.02, box.bottom + FLOOR_CLEARANCE)
    grasps = []
    for axis, half in zip(box.axes, box.half_widths):
        for sign in (1.0, -1.0):
            offset = sign * axis * (half - RIM_INSET)
            grasps.append(Grasp(np.array([box.center[0] + offset[0], box.center[1] + offset[1], rim_z]), axis, rim=True))
    grasps.sort(key=lambda g: float((g.point[:2] - box.center[:2]) @ away))
    return grasps


def plan_grasp(box: WorldBox, approach_from: np.ndarray) -> Grasp:
    """The preferred grasp of `plan_grasps`."""
    return plan_grasps(box, approach_from)[0]


def yaw_error(current_dir: np.ndarray, desired_dir: np.ndarray) -> float:
    """Signed rotation about +z (radians, in [-pi/2, pi/2]) taking the current finger direction
    onto the desired one; directions are lines, so a half turn counts as aligned."""
    current = np.arctan2(current_dir[1], current_dir[0])
    desired = np.arctan2(desired_dir[1], desired_dir[0])
    error = (desired - current + np.pi / 2) % np.pi - np.pi / 2
    return float(error)


def carry_height(obstacle_tops: list[float], hang: float, margin: float = 0.04) -> float:
    """Fingertip height that carries an object hanging `hang` below the fingertips over every obstacle."""
    return max(obstacle_tops, default=0.0) + hang + margin


def points_box(points: np.ndarray) -> WorldBox:
    """A WorldBox around world points (n, 3): footprint axes from their horizontal spread."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    lo, hi = points.min(axis=0), points.max(axis=0)
    xy = points[:, :2]
    mid = (xy.min(axis=0) + xy.max(axis=0)) / 2
    spread = np.cov((xy - mid).T) if len(xy) > 2 else np.eye(2)
    _, vectors = np.linalg.eigh(spread)
    axes = np.array([vectors[:, 1], vectors[:, 0]])  # long axis first
    halves = []
    centre = mid.copy()
    for axis in axes:
        projections = xy @ axis
        centre = centre + axis * ((projections.max() + projections.min()) / 2 - float(centre @ axis))
        halves.append((projections.max() - projections.min()) / 2)
    center = np.array([centre[0], centre[1], (lo[2] + hi[2]) / 2])
    return WorldBox(center, float(lo[2]), float(hi[2]), axes, np.array(halves, dtype=np.float64))


def extreme_points(corners: np.ndarray, direction: np.ndarray, depth: float) -> np.ndarray:
    """The geom corners (n, 8, 3) of the geoms lying within `depth` of the farthest one along
    `direction` (a drawer's handle sticks out furthest along its opening direction)."""
    corners = np.asarray(corners, dtype=np.float64)
    reach = corners @ np.asarray(direction, dtype=np.float64)  # (n, 8)
    far = reach.max(axis=1)
    keep = far >= far.max() - depth
    return corners[keep].reshape(-1, 3)


def top_points(corners: np.ndarray, depth: float) -> np.ndarray:
    """Corners of the geoms that reach within `depth` of the highest top (a knob's grip ridge)."""
    corners = np.asarray(corners, dtype=np.float64)
    tops = corners[..., 2].max(axis=1)
    return corners[tops >= tops.max() - depth].reshape(-1, 3)
