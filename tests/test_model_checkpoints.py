"""Checkpoint directories: save/load round trip, strict loading, bad input, inspect."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from model_helpers import TINY_STUDENT, TINY_TEACHER, make_obs
from vla_bench.cli import main
from vla_bench.errors import VlaBenchError
from vla_bench.models import from_pretrained, read_config
from vla_bench.models.base import resolve_device
from vla_bench.models.tiny import RECIPES, build_from_recipe
from vla_bench.results.provenance import sha256_path

CASES = [(TINY_TEACHER, 224), (TINY_STUDENT, 200)]


def _outputs(model, observations, windows_of):
    with torch.inference_mode():
        frames = model.encode_frames(observations)
        arm, gripper = model.predict(windows_of(frames), [o.instruction for o in observations])
    return arm, gripper


@pytest.mark.parametrize("checkpoint,size", CASES, ids=["teacher", "student"])
def test_save_load_round_trip_gives_identical_outputs(tmp_path, checkpoint, size):
    model = from_pretrained(checkpoint)
    model.save_pretrained(tmp_path / "copy")
    again = from_pretrained(tmp_path / "copy")
    rng = np.random.default_rng(0)
    observations = [make_obs(rng, size) for _ in range(3)]
    windows_of = lambda frames: [frames[:1], frames[:3]]  # noqa: E731  (two windows of different length)
    a1, g1 = _outputs(model, observations, windows_of)
    a2, g2 = _outputs(again, observations, windows_of)
    assert a1.shape == (2, 3, 6) and g1.shape == (2, 3, 1)
    assert torch.equal(a1, a2) and torch.equal(g1, g2)
    assert ((a1 >= -1) & (a1 <= 1)).all() and ((g1 >= 0) & (g1 <= 1)).all()
    assert read_config(tmp_path / "copy") == read_config(checkpoint)


def test_recipe_rebuild_matches_committed_config(tmp_path):
    built = build_from_recipe(RECIPES / "tiny-teacher.json", tmp_path / "t")
    assert read_config(built) == read_config(TINY_TEACHER)
    ours = load_file(str(built / "model.safetensors"))
    committed = load_file(str(TINY_TEACHER / "model.safetensors"))
    assert ours.keys() == committed.keys()
    assert all(torch.equal(ours[k], committed[k]) for k in ours)  # seeded: the recipe reproduces the committed weights


def _copy(tmp_path, source=TINY_TEACHER):
    target = tmp_path / "ckpt"
    shutil.copytree(source, target)
    return target


def _edit_weights(path, edit):
    weights = load_file(str(path / "model.safetensors"))
    edit(weights)
    save_file(weights, str(path / "model.safetensors"))


def test_missing_weight_is_named(tmp_path):
    path = _copy(tmp_path)
    _edit_weights(path, lambda w: w.pop("action_pred_token"))
    with pytest.raises(VlaBenchError, match=r"1 missing: action_pred_token"):
        from_pretrained(path)


def test_unexpected_and_misshaped_weights_are_named(tmp_path):
    path = _copy(tmp_path)

    def edit(w):
        w["extra_head.weight"] = torch.zeros(2)
        w["text_projector.weight"] = torch.zeros(3, 3)

    _edit_weights(path, edit)
    with pytest.raises(VlaBenchError) as err:
        from_pretrained(path)
    message = str(err.value)
    assert "1 unexpected: extra_head.weight" in message
    assert "text_projector.weight (3, 3) vs model (64, 32)" in message
    assert "\n" not in message


def test_not_a_checkpoint_directory_says_what_is_missing(tmp_path):
    with pytest.raises(VlaBenchError, match="missing config.json, model.safetensors"):
        read_config(tmp_path)
    path = _copy(tmp_path)
    (path / "tokenizer.json").unlink()
    with pytest.raises(VlaBenchError, match="missing tokenizer.json"):
        read_config(path)
    with pytest.raises(VlaBenchError, match="no such file"):
        read_config(tmp_path / "nope")


def test_unknown_vlm_class_and_architecture(tmp_path):
    path = _copy(tmp_path, TINY_STUDENT)
    config = json.loads((path / "config.json").read_text())
    config["model"]["vlm_class"] = "LlavaForConditionalGeneration"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(VlaBenchError, match="not a supported VLM class; supported: VITA-1.5, Qwen2_5_VLForConditionalGeneration"):
        from_pretrained(path)
    config["architecture"] = "sear"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(VlaBenchError, match="did you mean 'seer'"):
        read_config(path)


def test_observation_missing_a_view_or_state():
    model = from_pretrained(TINY_TEACHER)
    obs = make_obs(np.random.default_rng(0), 224)
    del obs.images["robot0_eye_in_hand"]
    with pytest.raises(VlaBenchError, match="needs camera view 'robot0_eye_in_hand'"):
        model.encode_frames([obs])
    obs = make_obs(np.random.default_rng(0), 224)
    obs.state = obs.state[:6]
    with pytest.raises(VlaBenchError, match="8-D state"):
        model.encode_frames([obs])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_but_unavailable():
    with pytest.raises(VlaBenchError, match="CUDA was requested"):
        resolve_device("cuda")
    assert resolve_device("cpu") == (torch.device("cpu"), torch.float32)


def test_inspect_prints_counts_protocol_and_run_hash(capsys):
    assert main(["inspect", str(TINY_STUDENT), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "vita-vla (VLM class VITA-1.5)" in out
    assert "execution temporal_ensemble (k=0.01)" in out
    assert sha256_path(TINY_STUDENT) in out
    assert "weights load strictly" in out


def test_inspect_bad_path_is_a_one_line_error(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    assert "missing config.json" in capsys.readouterr().err
