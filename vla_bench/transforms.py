"""The observation transform: raw frames and state of one timestep -> the tensors a model reads.

Each checkpoint declares its preprocessing in config.json (a `preprocessing` block), as its upstream
eval does it; evaluation and the training data loader both apply it through `ObservationTransform`:

    "preprocessing": {
      "image": {"size": 224, "library": "pil", "resize": "bicubic", "crop": "center",
                "mean": [...], "std": [...], "dtype": "float32"},
      "state": {"gripper": "qpos", "angle_centre": [3.14159, 0, 0]}
    }

- image: resize with `library` ("pil", "cv2" or "torch") and its `resize` method so the shorter side
  is `size`, then centre-crop to size x size (`crop` "center"; "none" resizes both sides to `size`),
  scale to [0, 1] as float32, normalise with mean/std. This is what torchvision's
  Resize(size, interpolation) + CenterCrop(size) + ToTensor + Normalize do on a PIL image (CLIP's
  processor, used by Seer's LIBERO eval).
- state: the 8-D protocol state [eef pos 3, eef rotation 3, gripper 2]; `gripper` "qpos" keeps the
  observed finger joints, "command" replaces them by the one-hot of the last executed gripper
  command ([1, 0] open, [0, 1] closed), as Seer does without `--gripper_width`. `angle_centre`
  (optional; upstream checkpoints have none) wraps the 3 Euler angles into [centre - pi, centre + pi).

Configs written before this block existed get `legacy_preprocessing`: today's behaviour then (torch
bilinear antialiased resize without crop, mean/std from `normalisation`, `model.gripper_state`).

Usable from a torch Dataset: `ObservationTransform.timestep(images, state, last_command)` needs
only numpy arrays and returns CPU tensors.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from vla_bench.errors import VlaBenchError

STATE_DIM = 8
GRIPPER_MODES = ("qpos", "command")
CROPS = ("center", "none")
DTYPES = ("float32",)


class PreprocessingError(VlaBenchError):
    """A preprocessing block in config.json that cannot be applied."""


def _pil_resize(image: np.ndarray, width: int, height: int, method: str) -> np.ndarray:
    from PIL import Image

    resample = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
                "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}[method]
    return np.array(Image.fromarray(image).resize((width, height), resample))


def _cv2_resize(image: np.ndarray, width: int, height: int, method: str) -> np.ndarray:
    import cv2

    flag = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST}[method]
    return cv2.resize(image, (width, height), interpolation=flag)


def _torch_resize(image: np.ndarray, width: int, height: int, method: str) -> np.ndarray:
    """torch interpolate with antialiasing; returns float values in [0, 255] (no rounding to uint8)."""
    import torch

    batch = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    mode = {"bilinear-antialias": "bilinear", "bicubic-antialias": "bicubic"}[method]
    out = torch.nn.functional.interpolate(batch, size=(height, width), mode=mode, align_corners=False, antialias=True)
    return out[0].permute(1, 2, 0).numpy()


# library -> (resize function, methods it offers)
RESIZERS: dict[str, tuple[Callable[[np.ndarray, int, int, str], np.ndarray], tuple[str, ...]]] = {
    "pil": (_pil_resize, ("bicubic", "bilinear", "nearest", "lanczos")),
    "cv2": (_cv2_resize, ("linear", "cubic", "area", "nearest")),
    "torch": (_torch_resize, ("bilinear-antialias", "bicubic-antialias")),
}


@dataclasses.dataclass(frozen=True)
class ImagePipeline:
    """How one camera image becomes a (3, size, size) tensor."""

    size: int
    library: str
    resize: str
    crop: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.library not in RESIZERS:
            raise PreprocessingError(f"preprocessing.image.library {self.library!r}; known: {', '.join(RESIZERS)}")
        methods = RESIZERS[self.library][1]
        if self.resize not in methods:
            raise PreprocessingError(f"preprocessing.image.resize {self.resize!r} is not a {self.library} method; known: {', '.join(methods)}")
        if self.crop not in CROPS:
            raise PreprocessingError(f"preprocessing.image.crop {self.crop!r}; known: {', '.join(CROPS)}")
        if self.dtype not in DTYPES:
            raise PreprocessingError(f"preprocessing.image.dtype {self.dtype!r}; known: {', '.join(DTYPES)}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise PreprocessingError("preprocessing.image.mean and .std need 3 values (R, G, B)")

    def resized(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 -> size x size x 3 (uint8 for pil/cv2, float in [0, 255] for torch)."""
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise PreprocessingError(f"expected an HxWx3 uint8 image, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        if self.crop == "none":
            target = (self.size, self.size)
        elif width <= height:  # shorter side -> size, as torchvision.transforms.Resize(int)
            target = (self.size, int(self.size * height / width))
        else:
            target = (int(self.size * width / height), self.size)
        if target != (width, height):
            resize, _ = RESIZERS[self.library]
            image = resize(image, target[0], target[1], self.resize)
        if self.crop == "center":
            top = int(round((image.shape[0] - self.size) / 2.0))
            left = int(round((image.shape[1] - self.size) / 2.0))
            image = image[top : top + self.size, left : left + self.size]
        return image

    def __call__(self, image: np.ndarray) -> Any:
        """HxWx3 uint8 -> normalised float32 tensor (3, size, size)."""
        import torch

        tensor = torch.from_numpy(np.array(self.resized(image))).permute(2, 0, 1).float().div(255)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        return tensor.sub(mean).div(std)


@dataclasses.dataclass(frozen=True)
class StateEncoding:
    """What fills the state's 2 gripper entries: "qpos" (observed finger joints) or "command"; and,
    when `angle_centre` is given, the branch of the 3 rotation angles (Euler states): each angle is
    wrapped into [centre - pi, centre + pi), so a gripper pointing down (roll near +-pi) reads a
    continuous roll instead of one that jumps by 2 pi whenever it turns slightly."""

    gripper: str
    angle_centre: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.gripper not in GRIPPER_MODES:
            raise PreprocessingError(f"preprocessing.state.gripper {self.gripper!r}; known: {', '.join(GRIPPER_MODES)}")
        if self.angle_centre is not None:
            centre = tuple(float(c) for c in self.angle_centre)
            if len(centre) != 3:
                raise PreprocessingError("preprocessing.state.angle_centre needs 3 values (one per rotation angle)")
            object.__setattr__(self, "angle_centre", centre)

    def __call__(self, state: np.ndarray, last_command: float | None = None) -> np.ndarray:
        """8-D protocol state -> the 8 float32 values the model reads.

        `last_command` is the last executed env gripper command (-1 open, +1 closed; None before the
        first step, meaning open); only "command" reads it.
        """
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (STATE_DIM,):
            raise PreprocessingError(f"expected an {STATE_DIM}-D state vector, got shape {state.shape}")
        if self.angle_centre is not None:
            state = state.copy()
            centre = np.asarray(self.angle_centre)
            state[3:6] = centre - np.pi + np.mod(state[3:6] - centre + np.pi, 2 * np.pi)
        if self.gripper == "command":
            state = state.copy()
            closed = last_command is not None and last_command >= 1.0
            state[6:8] = (0.0, 1.0) if closed else (1.0, 0.0)
        return state.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """The `preprocessing` block of a checkpoint config."""

    image: ImagePipeline
    state: StateEncoding

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "preprocessing") -> Preprocessing:
        try:
            image = dict(data["image"])
            image["mean"], image["std"] = tuple(image["mean"]), tuple(image["std"])
            return cls(image=ImagePipeline(**image), state=StateEncoding(**data["state"]))
        except (KeyError, TypeError) as exc:
            raise PreprocessingError(f"{where}: malformed preprocessing block ({type(exc).__name__}: {exc})") from None

    def to_dict(self) -> dict[str, Any]:
        image = dataclasses.asdict(self.image)
        state = {"gripper": self.state.gripper}
        if self.state.angle_centre is not None:  # absent from configs that do not wrap (unchanged files)
            state["angle_centre"] = list(self.state.angle_centre)
        return {"image": {**image, "mean": list(self.image.mean), "std": list(self.image.std)}, "state": state}


def legacy_preprocessing(model: Mapping[str, Any], normalisation: Mapping[str, Any], image_size: int) -> Preprocessing:
    """The preprocessing a config without a `preprocessing` block had: torch bilinear (antialiased)
    resize to `image_size`, no crop, `normalisation` mean/std, `model.gripper_state` (default qpos)."""
    try:
        mean, std = tuple(normalisation["image_mean"]), tuple(normalisation["image_std"])
    except KeyError as exc:
        raise PreprocessingError(f"config.json has no preprocessing block and no normalisation {exc}") from None
    return Preprocessing(
        image=ImagePipeline(size=image_size, library="torch", resize="bilinear-antialias", crop="none", mean=mean, std=std),
        state=StateEncoding(gripper=model.get("gripper_state", "qpos")),
    )


class ObservationTransform:
    """Applies a checkpoint's preprocessing to camera views and the state of one or more timesteps."""

    def __init__(self, preprocessing: Preprocessing, views: Sequence[str]) -> None:
        self.preprocessing = preprocessing
        self.views = tuple(views)

    def timestep(self, images: Mapping[str, np.ndarray], state: np.ndarray, last_command: float | None = None) -> dict[str, Any]:
        """One timestep: {view: HxWx3 uint8} + 8-D state -> {view: (3, S, S) float32 tensor, "state": (8,) tensor}."""
        import torch

        missing = [v for v in self.views if v not in images]
        if missing:
            have = ", ".join(sorted(images)) or "none (rendering off?)"
            raise PreprocessingError(f"the model needs camera view(s) {missing}; the observation has {have}")
        out: dict[str, Any] = {view: self.preprocessing.image(images[view]) for view in self.views}
        out["state"] = torch.from_numpy(self.preprocessing.state(state, last_command))
        return out

    def batch(self, images: Sequence[Mapping[str, np.ndarray]], states: Sequence[np.ndarray],
              last_commands: Sequence[float | None] | None = None) -> dict[str, Any]:
        """N timesteps -> {view: (N, 3, S, S), "state": (N, 8)} (stacked `timestep` outputs)."""
        import torch

        commands = last_commands if last_commands is not None else [None] * len(images)
        steps = [self.timestep(i, s, c) for i, s, c in zip(images, states, commands)]
        return {key: torch.stack([step[key] for step in steps]) for key in (*self.views, "state")}
