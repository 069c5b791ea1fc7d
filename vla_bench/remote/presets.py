"""Observation presets: how an env observation becomes a request of a given server family, and
which keys a server expects.

`openpi-libero` is what openpi's LIBERO client sends (examples/libero/main.py): the agent-view and
wrist images rotated 180° (our `openvla` protocol's orientation), resized with zero padding to 224
(`openpi_client.image_tools.resize_with_pad`, PIL bilinear), as uint8; the 8-D state (eef position,
axis-angle, 2 finger joints); the instruction as `prompt`. Other servers name the same fields
differently: a key map (`image=...,wrist_image=...,state=...,prompt=...`) renames them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from vla_bench.envs.base import Observation
from vla_bench.errors import VlaBenchError
from vla_bench.registry import Registry

FIELDS = ("image", "wrist_image", "state", "prompt")
CAMERAS = {"image": "agentview", "wrist_image": "robot0_eye_in_hand"}


@dataclasses.dataclass(frozen=True)
class ObservationPreset:
    """Request keys for each field, the image size sent (None: as the env delivers them) and the
    action chunk steps a client executes before querying again by default."""

    keys: dict[str, str]
    image_size: int | None
    replan_steps: int

    def __post_init__(self) -> None:
        missing = [f for f in FIELDS if f not in self.keys]
        if missing:
            raise ValueError(f"observation preset lacks keys for {missing}")

    def with_keys(self, key_map: str | None) -> "ObservationPreset":
        """This preset with fields renamed by "field=key,..." (e.g. "image=obs/front,prompt=task")."""
        if not key_map:
            return self
        keys = dict(self.keys)
        for item in key_map.split(","):
            field, sep, key = item.partition("=")
            field, key = field.strip(), key.strip()
            if not sep or not key or field not in FIELDS:
                raise VlaBenchError(f"--obs-keys {key_map!r}: expected field=key pairs with fields from {FIELDS}")
            keys[field] = key
        return dataclasses.replace(self, keys=keys)

    def request(self, obs: Observation) -> dict[str, Any]:
        """The request for one observation (images must be present)."""
        from openpi_client.image_tools import resize_with_pad

        message: dict[str, Any] = {}
        for field, camera in CAMERAS.items():
            image = np.asarray(obs.images[camera], dtype=np.uint8)
            if self.image_size is not None:
                image = resize_with_pad(image, self.image_size, self.image_size)
            message[self.keys[field]] = np.ascontiguousarray(image)
        message[self.keys["state"]] = np.asarray(obs.state, dtype=np.float64)
        message[self.keys["prompt"]] = obs.instruction
        return message

    def observation(self, message: dict[str, Any]) -> Observation:
        """The observation a request describes (server side); raises ValueError naming a bad key."""
        images = {}
        for field, camera in CAMERAS.items():
            image = np.asarray(message[self.keys[field]])
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"request key {self.keys[field]!r}: expected an HxWx3 uint8 image, got {image.dtype} {image.shape}")
            images[camera] = image
        state = np.asarray(message[self.keys["state"]], dtype=np.float64)
        if state.shape != (8,):
            raise ValueError(f"request key {self.keys['state']!r}: expected shape (8,), got {state.shape}")
        prompt = message[self.keys["prompt"]]
        if not isinstance(prompt, str):
            raise ValueError(f"request key {self.keys['prompt']!r}: expected a string, got {type(prompt).__name__}")
        return Observation(images=images, state=state, instruction=prompt)


PRESETS: Registry[ObservationPreset] = Registry("observation preset")
PRESETS.add(
    "openpi-libero",
    ObservationPreset(
        keys={
            "image": "observation/image",
            "wrist_image": "observation/wrist_image",
            "state": "observation/state",
            "prompt": "prompt",
        },
        image_size=224,
        replan_steps=5,
    ),
)
