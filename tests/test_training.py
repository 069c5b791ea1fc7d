"""Training and distillation (fast, fake-env demonstrations): the dataset reader, a micro run of each
stage whose checkpoints evaluate, stage 1's frozen parts, resume after kill -9, the export's parity
with evaluation, and bad input."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from training_helpers import write_fake_demos

from vla_bench.cli import main
from vla_bench.collect import DemoWriter
from vla_bench.envs.base import Observation
from vla_bench.errors import VlaBenchError
from vla_bench.models.checkpoint import from_pretrained, read_weights
from vla_bench.policies.vla_models import TorchChunkPredictor
from vla_bench.training import data as D
from vla_bench.training import objectives as O
from vla_bench.training.adapters import model_images, run_batch
from vla_bench.training.config import DistillConfig, TrainConfig
from vla_bench.training.jobs import distill, train_teacher

FAST = ["--batch-size", "2", "--log-every", "1", "--no-progress"]


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    return write_fake_demos(tmp_path_factory.mktemp("demos") / "demos.hdf5", tasks=(0,), inits=(0, 1))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demos) -> dict[str, Path]:
    """A micro run of each stage through the CLI: teacher, align, finetune from align, finetune alone."""
    root = tmp_path_factory.mktemp("runs")
    common = ["--data", str(demos), "--val-fraction", "0", *FAST]
    assert main(["train", "--output", str(root / "teacher"), "--steps", "10", "--save-every", "10", *common]) == 0
    teacher = root / "teacher" / "checkpoint"
    assert main(["distill", "--stage", "align", "--teacher", str(teacher), "--output", str(root / "align"), "--steps", "6", "--lr", "1e-3", *common]) == 0
    assert main(["distill", "--stage", "finetune", "--init", str(root / "align" / "checkpoint"), "--output", str(root / "finetune"), "--steps", "6", *common]) == 0
    return {"teacher": root / "teacher", "align": root / "align", "finetune": root / "finetune"}


def _train_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "train"]


# -- dataset --------------------------------------------------------------------------------------
def test_reader_round_trips_a_collected_file(demos):
    read = D.read_demos(demos, ("agentview", "robot0_eye_in_hand"))
    with h5py.File(demos) as f:
        assert len(read) == len(f["data"]) == 2
        for demo in read:
            group = f["data"][demo.name]
            np.testing.assert_array_equal(demo.images["agentview"], group["obs/agentview_rgb"][()])
            np.testing.assert_allclose(demo.state[:, 6:], group["obs/gripper_states"][()])
            np.testing.assert_allclose(demo.actions, group["actions"][()], rtol=1e-6)
            assert demo.task == group.attrs["language_instruction"]
            assert demo.group.endswith(f"/{group.attrs['init_idx']}")
    demo = read[0]
    item = D.WindowDataset([demo], history=4, chunk=3)[1]
    assert item["images"]["agentview"].shape == (4, 128, 128, 3)  # as rendered (vita-vla: 128 px)
    np.testing.assert_array_equal(item["actions"][0], demo.actions[1:4])  # frame t -> actions t..t+2
    end = D.WindowDataset([demo], history=4, chunk=3)[len(demo) - 4]
    assert end["valid"][-1].tolist() == [True, False, False]  # past the demo's end: masked


def test_reader_orders_demos_by_episode_not_by_finish_order(tmp_path):
    # workers finish out of order: the same episodes written 1-then-0 must read back as 0, 1
    forward = write_fake_demos(tmp_path / "forward.hdf5", inits=(0, 1))
    backward = write_fake_demos(tmp_path / "backward.hdf5", inits=(1, 0))
    a, b = D.read_demos(forward, ("agentview",)), D.read_demos(backward, ("agentview",))
    assert [d.init_idx for d in a] == [d.init_idx for d in b] == [0, 1]
    assert [d.name for d in b] == ["demo_1", "demo_0"]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.actions, y.actions)


def test_split_is_by_init_state_and_noop_filter(demos):
    read = D.read_demos(demos, ("agentview",))
    train, val = D.split_demos(read * 2, val_fraction=0.5, seed=0)  # duplicates share a group
    assert {d.group for d in train}.isdisjoint({d.group for d in val}) and val
    demo = copy.deepcopy(read[0])
    demo.actions[2] = demo.actions[1]
    demo.actions[2, :6] = 0.0  # a no-op: no arm motion, same gripper as the previous step
    assert len(D.drop_noops(demo)) == len(demo) - 1
    assert [d.init_idx for d in D.load_datasets([demos], ("agentview",), False, init_states=[1])] == [1]


def test_random_shift_translates_each_window_alike_across_its_frames(demos):
    rng = np.random.default_rng(7)
    views = ("agentview", "robot0_eye_in_hand")
    batch = {"images": {v: rng.integers(0, 256, (6, 3, 16, 20, 3), dtype=np.uint8) for v in views},
             "future": {v: rng.integers(0, 256, (6, 3, 16, 20, 3), dtype=np.uint8) for v in views},
             "state": rng.normal(size=(6, 3, 8)).astype(np.float32)}
    pixels = 3
    shifted = D.random_shift(batch, pixels, np.random.default_rng(0))
    assert D.random_shift(batch, 0, np.random.default_rng(0)) is batch
    pad = ((0, 0), (pixels, pixels), (pixels, pixels), (0, 0))
    offsets = set()
    for view in views:
        out, future = shifted["images"][view], shifted["future"][view]
        assert out.shape == batch["images"][view].shape and out.dtype == np.uint8
        for b in range(6):
            # exactly one offset reproduces the window's frames, and the same one its foresight targets
            padded, padded_future = np.pad(batch["images"][view][b], pad, mode="edge"), np.pad(batch["future"][view][b], pad, mode="edge")
            fits = [(dy, dx) for dy in range(2 * pixels + 1) for dx in range(2 * pixels + 1)
                    if np.array_equal(padded[:, dy : dy + 16, dx : dx + 20], out[b])]
            assert len(fits) == 1, (view, b)
            dy, dx = fits[0]
            np.testing.assert_array_equal(padded_future[:, dy : dy + 16, dx : dx + 20], future[b])
            offsets.add((view, dy, dx))
    assert len({o[1:] for o in offsets}) > 1  # windows and views move differently
    np.testing.assert_array_equal(shifted["state"], batch["state"])
    with pytest.raises(VlaBenchError, match="--augment-shift must be at least 0"):
        TrainConfig(data=(str(demos),), output="x", augment_shift=-1)


def test_reader_rejects_a_broken_file_naming_field_and_file(demos, tmp_path, capsys):
    broken = tmp_path / "broken.hdf5"
    broken.write_bytes(demos.read_bytes())
    with h5py.File(broken, "a") as f:
        del f["data/demo_1/obs/ee_ori"]
    with pytest.raises(VlaBenchError, match=r"broken.hdf5: /data/demo_1/obs/ee_ori is missing"):
        D.read_demos(broken, ("agentview",))
    assert main(["train", "--data", str(broken), "--output", str(tmp_path / "t"), "--steps", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ee_ori is missing" in err[0]


def test_reader_refuses_a_file_still_being_written(tmp_path, vita):
    writer = DemoWriter(tmp_path / "partial.hdf5", vita, "expert")
    try:
        code = subprocess.run(
            [sys.executable, "-c", "from vla_bench.training.data import read_demos; read_demos(__import__('pathlib').Path('"
             + str(tmp_path / "partial.hdf5") + "'), ('agentview',))"],
            capture_output=True, text=True,
        )
    finally:
        writer.close()
    assert "still being written" in code.stderr


# -- micro runs -----------------------------------------------------------------------------------
def test_micro_runs_lower_their_losses_and_evaluate(runs, tmp_path):
    for name in ("teacher", "align", "finetune"):
        rows = _train_rows(runs[name])
        assert rows[-1]["loss"] < rows[0]["loss"], f"{name}: loss did not fall ({rows[0]['loss']} -> {rows[-1]['loss']})"
        assert (runs[name] / "loss.png").stat().st_size > 0
        info = json.loads((runs[name] / "run.json").read_text())
        assert info["data"][0]["sha256"] and info["versions"]["accelerate"] and info["config"]["steps"] == rows[-1]["step"]
    assert json.loads((runs["finetune"] / "checkpoint" / "training.json").read_text())["init_kind"] == "align"
    for policy, run in (("seer", runs["teacher"]), ("vita-vla", runs["finetune"])):
        from_pretrained(run / "checkpoint")  # strict load
        assert main(["eval", "--env", "fake", "--suite", "libero_object", "--policy", policy, "--checkpoint", str(run / "checkpoint"),
                     "--protocol", "vita-vla", "--tasks", "0", "--trials", "1", "--max-steps", "3", "--workers", "0",
                     "--output", str(tmp_path / policy), "--no-progress"]) == 0


def test_exported_checkpoint_acts_as_trained_through_the_eval_path(runs, demos):
    """The export (state normalisation folded) run by the eval predictor, frame by frame, gives the
    training forward's actions: one observation path, no train/eval skew."""
    for run in (runs["teacher"], runs["finetune"]):
        exported = from_pretrained(run / "checkpoint")
        stats = json.loads((run / "run.json").read_text())["state_normalisation"]
        norm = (np.array(stats["mean"], dtype=np.float32), np.array(stats["std"], dtype=np.float32))
        trained = copy.deepcopy(exported)
        O.unfold_state_normalisation(trained, *norm)
        demo = D.read_demos(demos, exported.views)[0]
        batch = D.collate([D.WindowDataset([demo], exported.history, exported.action_steps)[0]])
        with torch.no_grad():
            out = run_batch(trained, batch, norm)
        predictor = TorchChunkPredictor(exported, image_size=64)
        predictor.episodes.start("e")
        for t in range(batch["state"].shape[1]):
            images = {v: model_images(exported, demo.images[v][t : t + 1])[0] for v in exported.views}  # what the env hands over
            obs = Observation(images, demo.state[t].astype(np.float64), demo.task, "e", t)
            chunk = predictor.predict([obs])[0]
            np.testing.assert_allclose(chunk[:, :6], out.arm[0, t].numpy(), atol=1e-5)
            np.testing.assert_allclose(chunk[:, 6], out.gripper[0, t, :, 0].numpy(), atol=1e-5)
            predictor.executed([obs], demo.actions[t : t + 1].astype(np.float64))


def test_align_trains_only_token_state_encoder_and_mapper(runs, demos, tmp_path):
    init = from_pretrained(runs["align"] / "init")
    trained = read_weights(runs["align"] / "checkpoint" / "model.safetensors")
    before = init.state_dict()
    changed = {k for k, v in trained.items() if not torch.equal(v, before[k])}
    allowed = ("action_token", *O.STATE_ENCODER, "action_mapper", *O.DECODER)  # the decoder is copied from the teacher
    assert changed and all(k.split(".")[0] in allowed for k in changed), sorted(changed)[:5]
    assert not any(k.startswith("vlm.") for k in changed)
    teacher = from_pretrained(runs["teacher"] / "checkpoint")
    for name in O.DECODER:  # stage 1 leaves the copied teacher decoder untouched
        for key, value in getattr(teacher, name).state_dict().items():
            assert torch.equal(trained[f"{name}.{key}"], value)
    # gradients: zero (None) everywhere outside the trained parts
    student = from_pretrained(runs["align"] / "init").train()
    names = O.set_trainable(student, O.default_trainable("align", student), ())
    objective = O.AlignObjective(student, teacher, None)
    batch = D.collate([D.WindowDataset(D.read_demos(demos, student.views), student.history, 3)[0]])
    objective(batch)["loss"].backward()
    for name, param in student.named_parameters():
        if name in names:
            assert param.grad is not None
        else:
            assert param.grad is None, name
    assert any(float(p.grad.abs().sum()) > 0 for n, p in student.named_parameters() if n.startswith("action_mapper"))


def test_finetune_without_align_warns_it_is_the_ablation(runs, demos, tmp_path, caplog):
    config = DistillConfig(stage="finetune", data=(str(demos),), output=str(tmp_path / "ft"), teacher=str(runs["teacher"] / "checkpoint"),
                           steps=1, batch_size=2, progress=False, val_fraction=0.0)
    distill(config)
    assert "no-alignment ablation" in caplog.text
    assert json.loads((tmp_path / "ft" / "checkpoint" / "training.json").read_text())["init_kind"] is None


# -- resume -------------------------------------------------------------------------------------------
def test_resume_after_kill_equals_an_uninterrupted_run(demos, tmp_path):
    args = ["--data", str(demos), "--steps", "6", "--save-every", "3", "--val-fraction", "0", "--augment-shift", "3", *FAST]
    assert main(["train", "--output", str(tmp_path / "whole"), *args]) == 0
    killed = subprocess.run([sys.executable, "-m", "vla_bench.cli", "train", "--output", str(tmp_path / "cut"), *args, "--interrupt-after", "3"],
                            capture_output=True, text=True)
    assert killed.returncode == 137, killed.stderr[-2000:]
    (tmp_path / "cut" / "state" / "step_0000006.tmp").mkdir()  # a half-written state is never the latest
    assert (tmp_path / "cut" / "state" / "latest").read_text() == "step_0000003"
    assert main(["train", "--output", str(tmp_path / "cut"), *args, "--resume"]) == 0
    whole = read_weights(tmp_path / "whole" / "checkpoint" / "model.safetensors")
    resumed = read_weights(tmp_path / "cut" / "checkpoint" / "model.safetensors")
    assert whole.keys() == resumed.keys()
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=1e-5, atol=1e-6, msg=key)
    assert [r["step"] for r in _train_rows(tmp_path / "cut")] == [1, 2, 3, 4, 5, 6]


# -- bad input ----------------------------------------------------------------------------------------
def test_resume_with_another_config_names_the_field(runs, demos, capsys):
    assert main(["train", "--output", str(runs["teacher"]), "--data", str(demos), "--steps", "10", "--save-every", "10",
                 "--val-fraction", "0", "--batch-size", "3", "--log-every", "1", "--no-progress", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "batch_size: saved 2, now 3" in err and len(err.strip().splitlines()) == 1


def test_teacher_width_mismatch_names_both(demos, tmp_path, runs):
    recipe = json.loads(Path("vla_bench/training/recipes/small-student.json").read_text())
    recipe["model"]["teacher_width"] = 96
    path = tmp_path / "student96.json"
    path.write_text(json.dumps(recipe))
    with pytest.raises(VlaBenchError, match=r"teacher action-feature width 128 .* mapper output 96"):
        distill(DistillConfig(stage="align", data=(str(demos),), output=str(tmp_path / "a"), init=str(path),
                              teacher=str(runs["teacher"] / "checkpoint"), steps=1, progress=False))


def test_out_of_memory_says_what_to_lower(demos, tmp_path, monkeypatch):
    def oom(self, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(O.TeacherObjective, "forward", oom)
    with pytest.raises(VlaBenchError, match="lower --batch-size"):
        train_teacher(TrainConfig(data=(str(demos),), output=str(tmp_path / "t"), steps=1, progress=False))


def test_dataset_missing_a_view_the_checkpoint_needs(demos, tmp_path):
    broken = tmp_path / "noview.hdf5"
    broken.write_bytes(demos.read_bytes())
    with h5py.File(broken, "a") as f:
        for name in f["data"]:
            del f[f"data/{name}/obs/eye_in_hand_rgb"]
    with pytest.raises(VlaBenchError, match=r"noview.hdf5: /data/demo_0/obs/eye_in_hand_rgb is missing \(the checkpoint needs it\)"):
        train_teacher(TrainConfig(data=(str(broken),), output=str(tmp_path / "t"), steps=1, progress=False))
