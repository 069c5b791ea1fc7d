"""The observation transform: each library's resize, the centre crop, the legacy default, the state
encodings, use from a torch DataLoader, and bad preprocessing blocks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from model_helpers import TINY_TEACHER, VIEWS
from vla_bench.errors import VlaBenchError
from vla_bench.models.checkpoint import CheckpointConfig, CheckpointError, read_config
from vla_bench.transforms import ImagePipeline, ObservationTransform, Preprocessing, StateEncoding, legacy_preprocessing

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_pil_bicubic_shorter_side_then_centre_crop():
    pipeline = ImagePipeline(size=224, library="pil", resize="bicubic", crop="center", mean=CLIP_MEAN, std=CLIP_STD)
    image = frame(128, 160)
    out = pipeline(image)
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    resized = np.asarray(Image.fromarray(image).resize((280, 224), Image.Resampling.BICUBIC))  # 160 * 224 / 128
    cropped = np.array(resized[:, 28:252])
    expected = (torch.from_numpy(cropped).permute(2, 0, 1).float() / 255 - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_the_resize_library_matters():
    image = frame(128, 128)
    outputs = {
        (library, method): ImagePipeline(224, library, method, "center", CLIP_MEAN, CLIP_STD)(image)
        for library, method in (("pil", "bicubic"), ("cv2", "linear"), ("torch", "bilinear-antialias"))
    }
    assert all(v.shape == (3, 224, 224) for v in outputs.values())
    bicubic = outputs["pil", "bicubic"]
    assert (bicubic - outputs["cv2", "linear"]).abs().max() > 0.05  # what Seer's eval does vs what we did
    assert (bicubic - outputs["torch", "bilinear-antialias"]).abs().max() > 0.05
    assert (outputs["cv2", "linear"] - outputs["torch", "bilinear-antialias"]).abs().max() > 0  # cv2 rounds in fixed point


def test_legacy_default_reproduces_the_old_torch_bilinear_path():
    config = {"image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD)}
    legacy = legacy_preprocessing({"gripper_state": "command"}, config, 224)
    assert legacy.state.gripper == "command" and legacy.image.crop == "none"
    image = frame(128, 128, 2)
    old = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0  # the pre-transform code path
    old = torch.nn.functional.interpolate(old, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
    old = (old - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(legacy.image(image), old[0], atol=1e-5, rtol=0)


def test_state_encodings():
    state = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.039, -0.038])
    np.testing.assert_array_equal(StateEncoding("qpos")(state, 1.0), state.astype(np.float32))
    command = StateEncoding("command")
    assert list(command(state, None)[6:]) == [1.0, 0.0]  # before the first step: open
    assert list(command(state, -1.0)[6:]) == [1.0, 0.0]
    assert list(command(state, 1.0)[6:]) == [0.0, 1.0]
    np.testing.assert_array_equal(command(state, 1.0)[:6], state[:6].astype(np.float32))


def test_angle_centre_wraps_the_euler_angles_onto_one_branch():
    # a gripper pointing down: roll crosses +-pi as it turns by 0.002 rad; wrapped around pi it is continuous
    before = np.array([0.1, 0.2, 0.3, 3.1406, 0.05, -0.2, 0.039, -0.038])
    after = before.copy()
    after[3] = -3.1406
    wrap = StateEncoding("qpos", angle_centre=(np.pi, 0.0, 0.0))
    assert abs(StateEncoding("qpos")(after)[3] - StateEncoding("qpos")(before)[3]) > 6
    assert abs(wrap(after)[3] - wrap(before)[3]) == pytest.approx(2 * np.pi - 2 * 3.1406, abs=1e-5)
    assert wrap(after)[3] == pytest.approx(2 * np.pi - 3.1406, abs=1e-5)  # in [0, 2 pi)
    np.testing.assert_allclose(wrap(before)[[0, 1, 2, 4, 5, 6, 7]], before[[0, 1, 2, 4, 5, 6, 7]], atol=1e-7)
    # pitch and yaw centred on 0: a yaw of 3.5 reads as 3.5 - 2 pi
    assert StateEncoding("qpos", angle_centre=(0, 0, 0))(before + [0, 0, 0, 0, 0, 3.7, 0, 0])[5] == pytest.approx(3.5 - 2 * np.pi, abs=1e-5)
    block = {"image": {"size": 8, "library": "pil", "resize": "bicubic", "crop": "none", "mean": [0, 0, 0], "std": [1, 1, 1]},
             "state": {"gripper": "command", "angle_centre": [3.14159, 0, 0]}}
    parsed = Preprocessing.from_dict(block)
    assert parsed.state.angle_centre == (3.14159, 0.0, 0.0)
    assert Preprocessing.from_dict(parsed.to_dict()) == parsed
    assert "angle_centre" not in Preprocessing.from_dict({**block, "state": {"gripper": "qpos"}}).to_dict()["state"]
    with pytest.raises(VlaBenchError, match="angle_centre needs 3 values"):
        Preprocessing.from_dict({**block, "state": {"gripper": "qpos", "angle_centre": [1.0]}})


def test_timesteps_load_through_a_torch_dataloader():
    transform = ObservationTransform(read_config(TINY_TEACHER).preprocessing, VIEWS)

    class Steps(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            images = {view: frame(128, 128, i) for view in VIEWS}
            return transform.timestep(images, np.zeros(8), last_command=None)

    batch = next(iter(torch.utils.data.DataLoader(Steps(), batch_size=3)))
    assert batch[VIEWS[0]].shape == (3, 3, 224, 224) and batch["state"].shape == (3, 8)
    single = transform.timestep({view: frame(128, 128, 1) for view in VIEWS}, np.zeros(8))
    torch.testing.assert_close(batch[VIEWS[1]][1], single[VIEWS[1]], atol=0, rtol=0)
    with pytest.raises(VlaBenchError, match="needs camera view"):
        transform.timestep({VIEWS[0]: frame(128, 128)}, np.zeros(8))


def test_the_preprocessing_block_round_trips_and_bad_ones_are_named():
    data = json.loads((TINY_TEACHER / "config.json").read_text())
    config = CheckpointConfig.from_dict(data)
    assert Preprocessing.from_dict(config.to_dict()["preprocessing"]) == config.preprocessing
    assert config.preprocessing.image.library == "pil" and config.preprocessing.state.gripper == "qpos"
    for edit, message in (
        (lambda p: p["image"].update(library="skimage"), "library 'skimage'; known: pil, cv2, torch"),
        (lambda p: p["image"].update(resize="linear"), "resize 'linear' is not a pil method"),
        (lambda p: p["state"].update(gripper="width"), "gripper 'width'; known: qpos, command"),
        (lambda p: p.pop("state"), "malformed preprocessing block"),
    ):
        bad = json.loads(json.dumps(data))
        edit(bad["preprocessing"])
        with pytest.raises(CheckpointError, match=message):
            CheckpointConfig.from_dict(bad)
