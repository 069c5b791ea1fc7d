"""Demonstration datasets: LIBERO/robomimic HDF5 files -> training windows.

A window is S consecutive frames of one demo: per frame both camera views (uint8, as stored), the
8-D state [ee_pos 3, ee_ori 3, gripper 2] and the next `chunk` actions (with a validity mask where the
demo ends); plus the demo's instruction. Images stay raw here: the model's own observation transform
(the one evaluation uses, see `adapters.py`) turns them into tensors, so train/eval skew cannot happen.

Files: `vla-bench collect` output and the official LIBERO datasets (DESIGN §10). The split is by
demo (grouped by task and init state when the file records them), so the init states of validation
demos are never trained on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vla_bench.errors import VlaBenchError

# Camera view (as checkpoints name them) -> HDF5 observation key.
VIEW_KEYS = {"agentview": "agentview_rgb", "robot0_eye_in_hand": "eye_in_hand_rgb"}
STATE_KEYS = ("ee_pos", "ee_ori", "gripper_states")
NOOP_THRESHOLD = 1e-4


class DatasetError(VlaBenchError):
    """A demonstration file that cannot be used as it is."""


@dataclasses.dataclass
class Demo:
    """One demonstration, in memory."""

    file: str
    name: str
    task: str  # instruction
    group: str  # split unit: "<task key>/<init state>" when known, else the demo itself
    images: dict[str, np.ndarray]  # view -> (T, H, W, 3) uint8
    state: np.ndarray  # (T, 8) float32
    actions: np.ndarray  # (T, 7) float32
    init_idx: int | None = None  # the LIBERO init state it started from, when the file records it

    def __len__(self) -> int:
        return len(self.actions)


def _open(path: Path) -> Any:
    import h5py

    if not path.is_file():
        raise DatasetError(f"dataset {path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "lock" in str(exc).lower() or "already open" in str(exc).lower():
            raise DatasetError(f"dataset {path} is still being written (is `vla-bench collect` running?); wait for it to finish") from None
        raise DatasetError(f"dataset {path}: not a readable HDF5 file ({exc}); if `vla-bench collect` was killed while writing it, collect again") from None


def _field(group: Any, key: str, path: Path) -> np.ndarray:
    if key not in group:
        raise DatasetError(f"dataset {path}: {group.name}/{key} is missing (the checkpoint needs it)")
    return group[key][()]


def _instruction(demo: Any, data: Any, path: Path) -> str:
    if "language_instruction" in demo.attrs:
        return str(demo.attrs["language_instruction"])
    if "problem_info" in data.attrs:  # official LIBERO: one task per file
        return str(json.loads(data.attrs["problem_info"])["language_instruction"])
    raise DatasetError(f"dataset {path}: {demo.name} has no language_instruction attribute and data/ has no problem_info")


def file_conventions(path: Path) -> dict[str, Any]:
    """The image orientation and state convention a file records (None where it does not say)."""
    with _open(path) as f:
        if "data" not in f:
            raise DatasetError(f"dataset {path}: group data/ is missing (not a LIBERO/robomimic file)")
        attrs = f["data"].attrs
        protocol = json.loads(attrs["protocol"]) if "protocol" in attrs else None
        return {
            "flip_images": None if protocol is None else bool(protocol.get("flip_images")),
            "state": str(attrs["ee_ori_convention"]) if "ee_ori_convention" in attrs else None,
        }


def read_demos(path: Path, views: Sequence[str]) -> list[Demo]:
    """Every demo of one HDF5 file, with the fields `views` and the state need."""
    path = Path(path)
    demos, order = [], []
    with _open(path) as f:
        if "data" not in f:
            raise DatasetError(f"dataset {path}: group data/ is missing (not a LIBERO/robomimic file)")
        data = f["data"]
        names = sorted((k for k in data if k.startswith("demo_")), key=lambda k: int(k.split("_")[1]))
        if not names:
            raise DatasetError(f"dataset {path}: data/ holds no demo_<i> groups")
        for name in names:
            demo = data[name]
            for view in views:
                if view not in VIEW_KEYS:
                    raise DatasetError(f"checkpoint view {view!r} has no dataset key; known views: {', '.join(VIEW_KEYS)}")
            obs = demo["obs"] if "obs" in demo else None
            if obs is None:
                raise DatasetError(f"dataset {path}: {demo.name}/obs is missing (the checkpoint needs it)")
            images = {view: _field(obs, VIEW_KEYS[view], path) for view in views}
            state = np.concatenate([_field(obs, key, path).reshape(-1, 3 if key != "gripper_states" else 2) for key in STATE_KEYS], axis=1)
            actions = _field(demo, "actions", path)
            lengths = {len(actions), len(state), *(len(v) for v in images.values())}
            if len(lengths) != 1:
                raise DatasetError(f"dataset {path}: {demo.name} has fields of different lengths {sorted(lengths)}")
            if actions.ndim != 2 or actions.shape[1] != 7:
                raise DatasetError(f"dataset {path}: {demo.name}/actions has shape {actions.shape}; expected (T, 7)")
            task = _instruction(demo, data, path)
            init_idx = int(demo.attrs["init_idx"]) if "init_idx" in demo.attrs else None
            if init_idx is not None:
                group = f"{demo.attrs.get('suite', '')}/{demo.attrs.get('task_id', task)}/{init_idx}"
            else:
                group = f"{path.name}/{name}"
            demos.append(Demo(str(path), name, task, group, images, state.astype(np.float32), actions.astype(np.float32), init_idx))
            order.append(_episode_key(demo.attrs))
    if all(key is not None for key in order):
        # `vla-bench collect` writes demos in the order its workers finish them, so the same
        # episodes can land in a different demo_<i> order from run to run; sorting by episode
        # identity makes training independent of worker timing.
        demos = [demo for _, demo in sorted(zip(order, demos), key=lambda pair: pair[0])]
    return demos


def _episode_key(attrs) -> tuple | None:
    """(suite, task_id, init_idx, seed) of a demo written by `vla-bench collect`; None otherwise."""
    if not all(k in attrs for k in ("suite", "task_id", "init_idx", "seed")):
        return None
    return (str(attrs["suite"]), int(attrs["task_id"]), int(attrs["init_idx"]), int(attrs["seed"]))


def drop_noops(demo: Demo) -> Demo:
    """OpenVLA's no-op filter: drop a step whose |arm action| < 1e-4 everywhere and whose gripper
    command equals the previous kept step's."""
    keep = []
    previous = None
    for t, action in enumerate(demo.actions):
        if np.all(np.abs(action[:6]) < NOOP_THRESHOLD) and previous is not None and action[6] == previous:
            continue
        keep.append(t)
        previous = action[6]
    index = np.asarray(keep)
    return dataclasses.replace(
        demo, images={v: x[index] for v, x in demo.images.items()}, state=demo.state[index], actions=demo.actions[index]
    )


def split_demos(demos: Sequence[Demo], val_fraction: float, seed: int) -> tuple[list[Demo], list[Demo]]:
    """Split by group (task + init state): no validation group is trained on. At least one group is
    kept for training; validation is empty when val_fraction is 0."""
    groups = sorted({d.group for d in demos})
    rng = np.random.default_rng(seed)
    order = [groups[i] for i in rng.permutation(len(groups))]
    count = min(len(groups) - 1, int(round(val_fraction * len(groups)))) if val_fraction > 0 else 0
    val_groups = set(order[:count])
    return [d for d in demos if d.group not in val_groups], [d for d in demos if d.group in val_groups]


@dataclasses.dataclass(frozen=True)
class Window:
    demo: int
    start: int


class WindowDataset:
    """Sliding windows of `history` frames over demos (every start position; demos shorter than the
    history give one shorter window). Item: dict of numpy arrays, collated by `collate`."""

    def __init__(self, demos: Sequence[Demo], history: int, chunk: int) -> None:
        self.demos = list(demos)
        self.history = history
        self.chunk = chunk
        self.windows = [
            Window(i, s) for i, d in enumerate(self.demos) for s in range(max(1, len(d) - history + 1))
        ]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        w = self.windows[index]
        demo = self.demos[w.demo]
        end = min(len(demo), w.start + self.history)
        frames = np.arange(w.start, end)
        ahead = frames[:, None] + np.arange(self.chunk)[None]  # (T, C) action indices
        valid = ahead < len(demo)
        actions = demo.actions[np.minimum(ahead, len(demo) - 1)]
        future = np.minimum(frames + self.chunk, len(demo) - 1)  # foresight target: `chunk` steps ahead
        return {
            "images": {v: x[frames] for v, x in demo.images.items()},
            "future": {v: x[future] for v, x in demo.images.items()},
            "state": demo.state[frames],
            "last_command": np.concatenate([[np.nan], demo.actions[:-1, 6]])[frames],  # NaN: no action yet
            "actions": actions,
            "valid": valid,
            "instruction": demo.task,
        }


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack items of equal window length (numpy; the adapter moves them to torch)."""
    views = items[0]["images"].keys()
    return {
        "images": {v: np.stack([it["images"][v] for it in items]) for v in views},
        "future": {v: np.stack([it["future"][v] for it in items]) for v in views},
        "state": np.stack([it["state"] for it in items]),
        "last_command": np.stack([it["last_command"] for it in items]),
        "actions": np.stack([it["actions"] for it in items]),
        "valid": np.stack([it["valid"] for it in items]),
        "instruction": [it["instruction"] for it in items],
    }


def random_shift(batch: dict[str, Any], pixels: int, rng: np.random.Generator) -> dict[str, Any]:
    """Random-shift augmentation (DrQ): each window's image of each view moves by up to `pixels`
    (stored-image pixels) in x and y, edges repeated; every frame of a window and its foresight target
    move alike, so motion between frames is unchanged. Returns a new batch; 0 pixels returns `batch`."""
    if pixels <= 0:
        return batch
    size = len(batch["state"])
    offsets = {view: rng.integers(0, 2 * pixels + 1, size=(size, 2)) for view in batch["images"]}
    pad = ((0, 0), (0, 0), (pixels, pixels), (pixels, pixels), (0, 0))
    out = dict(batch)
    for key in ("images", "future"):
        shifted = {}
        for view, x in batch[key].items():  # (B, T, H, W, C)
            h, w = x.shape[2:4]
            padded = np.pad(x, pad, mode="edge")
            shifted[view] = np.stack([padded[b, :, dy : dy + h, dx : dx + w] for b, (dy, dx) in enumerate(offsets[view])])
        out[key] = shifted
    return out


def batches(dataset: WindowDataset, batch_size: int, seed: int, epoch: int, shuffle: bool = True) -> list[list[int]]:
    """The batches of one epoch: a permutation fixed by (seed, epoch), grouped so each batch holds
    windows of one length (only demos shorter than the history give short windows)."""
    order = np.random.default_rng([seed, epoch]).permutation(len(dataset)) if shuffle else np.arange(len(dataset))
    by_length: dict[int, list[int]] = {}
    for i in order:
        w = dataset.windows[int(i)]
        length = min(len(dataset.demos[w.demo]) - w.start, dataset.history)
        by_length.setdefault(length, []).append(int(i))
    out = []
    for rows in by_length.values():
        out += [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    if shuffle:
        out = [out[i] for i in np.random.default_rng([seed, epoch, 1]).permutation(len(out))]
    return out


def arm_scale(demos: Sequence[Demo]) -> np.ndarray:
    """Per-dimension arm loss scale: 1 / (std_d / mean std), so small rotation deltas weigh as much as
    translation deltas."""
    std = np.maximum(np.concatenate([d.actions[:, :6] for d in demos]).std(axis=0), 1e-4)
    return (std.mean() / std).astype(np.float32)


def data_hash(paths: Sequence[Path]) -> str:
    """sha256 over the dataset files' contents, in the given order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_datasets(paths: Sequence[Path], views: Sequence[str], noop_filter: bool, init_states: Sequence[int] | None = None) -> list[Demo]:
    """Every demo of `paths` (only those that started from `init_states`, when given)."""
    demos = [d for p in paths for d in read_demos(Path(p), views)]
    if init_states is not None:
        unknown = sorted({d.file for d in demos if d.init_idx is None})
        if unknown:
            raise DatasetError(f"--init-states: dataset {unknown[0]} does not record its demos' init states (demo attribute init_idx)")
        wanted = set(init_states)
        demos = [d for d in demos if d.init_idx in wanted]
        if not demos:
            raise DatasetError(f"--init-states: no demo started from init states {sorted(wanted)}")
    return [drop_noops(d) for d in demos] if noop_filter else demos


def check_conventions(paths: Sequence[Path], flip_images: bool, state: str) -> list[str]:
    """Raise when a file's recorded image orientation or state convention differs from the
    checkpoint's protocol; warnings (returned) for files that do not record them."""
    warnings = []
    for path in paths:
        conv = file_conventions(Path(path))
        if conv["flip_images"] is not None and conv["flip_images"] != flip_images:
            raise DatasetError(f"dataset {path}: images flip_images={conv['flip_images']} but the checkpoint's protocol has flip_images={flip_images}; collect with the checkpoint's protocol")
        if conv["state"] is not None and conv["state"] != state:
            raise DatasetError(f"dataset {path}: state convention {conv['state']!r} but the checkpoint's protocol has state {state!r}; collect with the checkpoint's protocol")
        if conv["flip_images"] is None or conv["state"] is None:
            warnings.append(f"dataset {path} does not record its image orientation / state convention; assuming the checkpoint's")
    return warnings
