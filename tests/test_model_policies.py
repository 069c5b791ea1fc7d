"""The seer and vita-vla policies: batched == single, gradients, protocol checks, a fake-env run."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import numpy as np
import pytest
import torch

from model_helpers import INSTRUCTIONS, TINY_STUDENT, TINY_TEACHER, make_obs
from vla_bench.config import EvalConfig
from vla_bench.episodes import Episode
from vla_bench.errors import VlaBenchError
from vla_bench.evaluate import evaluate
from vla_bench.models import from_pretrained
from vla_bench.policies import PolicyContext, make_policy
from vla_bench.results.provenance import sha256_path
from vla_bench.specs import protocols

VITA = protocols().get("vita-vla")


# Both transforms resize (env images come as rendered, 128 px), as Seer's and VITA-VLA's LIBERO evals feed them.
@pytest.mark.parametrize("name,checkpoint,size", [("seer", TINY_TEACHER, 128), ("vita-vla", TINY_STUDENT, 128)], ids=["teacher", "student"])
def test_batch_of_n_equals_n_single_calls(name, checkpoint, size):
    context = PolicyContext(protocol=VITA, checkpoint=checkpoint)
    batched, single = make_policy(name, context), make_policy(name, context)
    assert batched.image_size == size
    episodes = [Episode("libero_10", task, 0, 42, 20) for task in range(3)]
    for policy in (batched, single):
        for episode in episodes:
            policy.start_episode(episode)
    rng = np.random.default_rng(0)
    # Episodes start at different times and carry different instructions (different prompt lengths).
    starts = {0: 0, 1: 1, 2: 3}
    for tick in range(5):
        live = [(i, tick - starts[i]) for i in range(3) if tick >= starts[i]]
        observations = [make_obs(rng, size, INSTRUCTIONS[i], episodes[i].key, step) for i, step in live]
        together = batched.infer(observations).actions
        apart = np.concatenate([single.infer([obs]).actions for obs in observations])
        np.testing.assert_allclose(together[:, :6], apart[:, :6], atol=1e-5)
        np.testing.assert_array_equal(together[:, 6], apart[:, 6])
        assert together.shape == (len(observations), 7)
        assert set(np.unique(together[:, 6])) <= {-1.0, 1.0}


def test_history_window_resets_with_the_episode():
    policy = make_policy("seer", PolicyContext(protocol=VITA, checkpoint=TINY_TEACHER))
    episode = Episode("libero_10", 0, 0, 42, 20)
    rng = np.random.default_rng(3)
    first = [make_obs(rng, 224, step=t) for t in range(3)]
    policy.start_episode(episode)
    run1 = [policy.infer([obs]).actions for obs in first]
    assert len(policy.predictor.episodes[episode.key].window) == 3
    policy.start_episode(episode)
    assert len(policy.predictor.episodes[episode.key].window) == 0
    run2 = [policy.infer([obs]).actions for obs in first]
    np.testing.assert_array_equal(np.concatenate(run1), np.concatenate(run2))


def test_window_is_capped_at_the_model_history():
    policy = make_policy("seer", PolicyContext(protocol=VITA, checkpoint=TINY_TEACHER))
    episode = Episode("libero_10", 0, 0, 42, 20)
    policy.start_episode(episode)
    rng = np.random.default_rng(4)
    for t in range(9):
        policy.infer([make_obs(rng, 224, step=t)])
    assert [step for step, _ in policy.predictor.episodes[episode.key].window] == list(range(2, 9))


def test_gradient_reaches_action_token_and_state_encoder():
    student = from_pretrained(TINY_STUDENT).train()
    rng = np.random.default_rng(5)
    frames = student.encode_frames([make_obs(rng, 200, step=t) for t in range(2)])
    arm, gripper = student.predict([frames], [INSTRUCTIONS[0]])
    loss = torch.nn.functional.smooth_l1_loss(arm, torch.zeros_like(arm)) + 0.01 * torch.nn.functional.binary_cross_entropy(gripper, torch.ones_like(gripper))
    loss.backward()
    for name in ("action_token", "arm_state_encoder.weight", "gripper_state_encoder.weight", "state_projector.weight", "action_mapper.0.weight"):
        grad = student.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name

    teacher = from_pretrained(TINY_TEACHER).train()
    images = torch.randn(1, 2, 3, 224, 224)
    out = teacher(images, images, torch.randn(1, 2, 8), teacher.tokenize([INSTRUCTIONS[0]]))
    assert out["image_pred"].shape == (1, 2, 2, 196, 16 * 16 * 3)
    (out["arm"].square().mean() + out["image_pred"].square().mean()).backward()
    for name in ("action_pred_token", "arm_state_encoder.weight", "obs_tokens", "transformer_backbone.h.0.attn.c_attn.weight"):
        assert teacher.get_parameter(name).grad.abs().sum() > 0, name


def test_block_causal_mask_hides_future_timesteps():
    teacher = from_pretrained(TINY_TEACHER)
    context = torch.randn(1, 3, teacher.tokens_a, teacher.hidden)
    changed = context.clone()
    changed[:, 2] += 1.0
    with torch.inference_mode():
        a1, _, _ = teacher.forward_tokens(context)
        a2, _, _ = teacher.forward_tokens(changed)
    assert torch.equal(a1[:, :2], a2[:, :2])
    assert not torch.equal(a1[:, 2], a2[:, 2])


def test_protocol_mismatch_warns_or_refuses(caplog):
    openvla = protocols().get("openvla")
    with caplog.at_level(logging.WARNING, logger="vla_bench"):
        make_policy("vita-vla", PolicyContext(protocol=openvla, checkpoint=TINY_STUDENT))
    assert "expects protocol 'vita-vla' but the run uses 'openvla'" in caplog.text
    assert "execution: checkpoint 'temporal_ensemble', run 'single'" in caplog.text
    with pytest.raises(VlaBenchError, match="refused by --strict-protocol"):
        make_policy("vita-vla", PolicyContext(protocol=openvla, checkpoint=TINY_STUDENT, strict_protocol=True))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vla_bench"):
        make_policy("vita-vla", PolicyContext(protocol=VITA, checkpoint=TINY_STUDENT, strict_protocol=True))
    assert caplog.text == ""


def test_protocol_variant_of_the_same_name_says_so(caplog):
    variant = dataclasses.replace(VITA, execution="single")
    with caplog.at_level(logging.WARNING, logger="vla_bench"):
        make_policy("vita-vla", PolicyContext(protocol=variant, checkpoint=TINY_STUDENT))
    assert "expects a variant of protocol 'vita-vla' that differs from the run's" in caplog.text
    assert "execution: checkpoint 'temporal_ensemble', run 'single'" in caplog.text
    assert "but the run uses" not in caplog.text


def test_policy_argument_errors():
    with pytest.raises(VlaBenchError, match="needs --checkpoint DIR"):
        make_policy("seer", PolicyContext(protocol=VITA))
    with pytest.raises(VlaBenchError, match="holds a 'vita-vla' model; use --policy vita-vla"):
        make_policy("seer", PolicyContext(protocol=VITA, checkpoint=TINY_STUDENT))


def test_eval_on_the_fake_env_records_the_checkpoint(tmp_path):
    config = EvalConfig(suite="libero_10", policy="seer", checkpoint=str(TINY_TEACHER), protocol="vita-vla",
                        tasks="0", trials=1, max_steps=6, env="fake", output=str(tmp_path / "run"), progress=False)
    result = evaluate(config)
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["policy"]["checkpoint"]["sha256"] == sha256_path(TINY_TEACHER)
    assert run["image_size"] == 128  # as rendered: the checkpoint's transform resizes to 224
    model = run["policy"]["model"]
    assert model["architecture"] == "seer" and model["dtype"] == "float32" and model["protocol_differences"] == []
    assert model["execution"] == {"mode": "temporal_ensemble", "gripper": "threshold", "chunk_steps": 3, "ensemble_k": 0.01}
    records = [json.loads(line) for line in (result.run_dir / "episodes.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["status"] == "ok" and records[0]["steps"] == 6


def test_seer_reads_the_finger_joints_by_default_as_upstream_libero_scripts_run_it():
    policy = make_policy("seer", PolicyContext(protocol=VITA, checkpoint=TINY_TEACHER))
    assert policy.predictor.gripper_state == "qpos"  # Seer's LIBERO scripts pass --gripper_width
    episode = Episode("libero_10", 0, 0, 42, 20)

    def chunk(state_tail):
        policy.start_episode(episode)
        o = make_obs(np.random.default_rng(7), 128, episode=episode.key)
        o.state[6:] = state_tail
        return policy.predictor.predict([o])

    assert not np.array_equal(chunk([0.04, -0.04]), chunk([0.0, 0.0]))


def test_a_command_mode_checkpoint_reads_its_last_gripper_command_not_the_finger_joints(tmp_path):
    checkpoint = tmp_path / "teacher-command"
    shutil.copytree(TINY_TEACHER, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    config["preprocessing"]["state"]["gripper"] = "command"
    (checkpoint / "config.json").write_text(json.dumps(config))
    policy = make_policy("seer", PolicyContext(protocol=VITA, checkpoint=checkpoint))
    predictor = policy.predictor
    assert predictor.gripper_state == "command"
    episode = Episode("libero_10", 0, 0, 42, 20)
    policy.start_episode(episode)
    obs = make_obs(np.random.default_rng(6), 128, episode=episode.key)
    assert predictor.episodes[episode.key].last_command is None  # starts open
    predictor.executed([obs], np.array([[0, 0, 0, 0, 0, 0, 1.0]]))
    assert predictor.episodes[episode.key].last_command == 1.0

    def chunk(state_tail, command):
        policy.start_episode(episode)
        predictor.episodes[episode.key].last_command = command
        o = make_obs(np.random.default_rng(7), 128, episode=episode.key)
        o.state[6:] = state_tail
        return predictor.predict([o])

    np.testing.assert_array_equal(chunk([0.04, -0.04], -1.0), chunk([0.0, 0.0], -1.0))
    np.testing.assert_array_equal(chunk([0.04, -0.04], None), chunk([0.0, 0.0], -1.0))
    assert not np.array_equal(chunk([0.04, -0.04], -1.0), chunk([0.04, -0.04], 1.0))


def test_render_off_with_an_image_policy_is_refused_before_the_run(tmp_path):
    config = EvalConfig(suite="libero_10", policy="vita-vla", checkpoint=str(TINY_STUDENT), protocol="vita-vla",
                        tasks="0", trials=1, max_steps=2, env="fake", render="off", output=str(tmp_path / "run"), progress=False)
    with pytest.raises(VlaBenchError, match="reads camera images"):
        evaluate(config)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("checkpoint,size", [(TINY_TEACHER, 224), (TINY_STUDENT, 200)], ids=["teacher", "student"])
def test_bf16_path_used_on_cuda_runs_and_stays_close_to_fp32(checkpoint, size):
    fp32, bf16 = from_pretrained(checkpoint), from_pretrained(checkpoint).to(torch.bfloat16)
    rng = np.random.default_rng(8)
    observations = [make_obs(rng, size, step=t) for t in range(3)]
    with torch.inference_mode():
        a32, g32 = fp32.predict([fp32.encode_frames(observations)], [observations[0].instruction])
        frames = bf16.encode_frames(observations)
        a16, g16 = bf16.predict([frames, frames[:2]], [observations[0].instruction] * 2)
    assert a16.dtype == torch.bfloat16
    torch.testing.assert_close(a16[:1].float(), a32, atol=2e-2, rtol=0)
    torch.testing.assert_close(g16[:1].float(), g32, atol=2e-2, rtol=0)
