"""Seer parity against fixtures made by upstream code (scripts/parity/seer_fixtures.py; OpenRobotLab/Seer
at the commit in tests/fixtures/upstream/seer/upstream.json): the files upstream training and its frozen
parts come in are imported through `vla-bench import-checkpoint` as a new process, and the imported
checkpoint reproduces, over a 10-step LIBERO episode rendered by our env, upstream's CLIP tokens, its
preprocessed image, its action chunks (within 1e-4, fp32) and the actions its eval wrapper sends to
the env (gripper commands identical, arm within 1e-4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vla_bench.cli import main
from vla_bench.envs.base import Observation
from vla_bench.episodes import Episode
from vla_bench.models import from_pretrained
from vla_bench.policies import PolicyContext, make_policy
from vla_bench.specs import protocols

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "upstream" / "seer"
TOLERANCE = 1e-4


def import_args(output: Path, **overrides: str) -> list[str]:
    args = {"source": FIXTURES / "seer_trainable.pth", "vit-checkpoint-path": FIXTURES / "mae_pretrain_vit_base.pth",
            "clip-checkpoint-path": FIXTURES / "ViT-B-32.pt", "tokenizer": FIXTURES / "tokenizer",
            "config": FIXTURES / "seer-config.json", "output": output, **overrides}
    return ["import-checkpoint", "--kind", "seer", *[x for k, v in args.items() if v is not None for x in (f"--{k}", str(v))]]


def vla_bench(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "VLA_BENCH_TORCH_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "vla_bench.cli", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("parity") / "seer"
    done = vla_bench(import_args(out))
    assert done.returncode == 0, done.stderr
    assert "tensors of ViT-B-32.pt to float32" in done.stdout  # the CLIP release's fp16 weights
    return out


@pytest.fixture(scope="module")
def episode():
    meta = json.loads((FIXTURES / "episode.json").read_text())
    return meta, np.load(FIXTURES / "episode.npz"), np.load(FIXTURES / "expected.npz")


def test_import_records_what_it_read(imported):
    config = json.loads((imported / "config.json").read_text())
    upstream = json.loads((FIXTURES / "upstream.json").read_text())
    record = config["model"]["imported"]
    assert record["upstream"] == f"OpenRobotLab/Seer {upstream['commit']}"
    clip = torch.load(FIXTURES / "ViT-B-32.pt", weights_only=True)
    assert record["converted_to_float32"]["clip_checkpoint_path"] == {"float16": len(clip)}  # the release is fp16
    assert record["converted_to_float32"]["checkpoint"] == {}
    assert record["files"]["vit_checkpoint_path"] == "mae_pretrain_vit_base.pth"


def test_tokens_and_preprocessed_image_match_upstream(imported, episode):
    meta, frames, expected = episode
    model = from_pretrained(imported)
    ids = model.tokenize([meta["instruction"]])[0].numpy()
    theirs = expected["text_tokens"]
    end = int(np.argmax(theirs == 49407)) + 1  # up to CLIP's end-of-text (what the text encoder reads)
    np.testing.assert_array_equal(ids[:end], theirs[:end])
    image = model.transform.preprocessing.image(frames["agentview"][0]).numpy()
    np.testing.assert_allclose(image, expected["first_agentview_input"], atol=1e-6, rtol=0)


def test_action_chunks_and_env_actions_match_upstream(imported, episode):
    meta, frames, expected = episode
    policy = make_policy("seer", PolicyContext(protocol=protocols().get(meta["protocol"]), checkpoint=imported))
    assert policy.image_size == 128  # images reach the transform as rendered
    chunks: list[np.ndarray] = []
    predict = policy.predictor.predict
    policy.predictor.predict = lambda observations: chunks.append(predict(observations)[0]) or np.stack(chunks[-1:])
    ep = Episode(meta["suite"], meta["task_id"], meta["init_state"], meta["env_seed"], meta["steps"])
    policy.start_episode(ep)
    actions = []
    for t in range(meta["steps"]):
        obs = Observation(images={view: frames[view][t] for view in meta["views"]}, state=frames["state"][t],
                          instruction=meta["instruction"], episode=ep.key, step=t)
        actions.append(policy.infer([obs]).actions[0])
    chunks_diff = np.abs(np.stack(chunks) - expected["chunks"]).max()
    assert chunks_diff < TOLERANCE, f"action chunks differ from upstream's by {chunks_diff:.2g}"
    actions = np.stack(actions)
    np.testing.assert_array_equal(actions[:, 6], expected["actions"][:, 6])  # gripper commands
    assert set(actions[:, 6]) == {-1.0, 1.0}  # the episode covers both commands
    np.testing.assert_allclose(actions[:, :6], expected["actions"][:, :6], atol=TOLERANCE, rtol=0)


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    """Each bad input the Seer importer meets: one line naming the problem, exit 2."""
    state = torch.load(FIXTURES / "seer_trainable.pth", weights_only=True)
    newer = dict(state["model_state_dict"], **{"module.goal_image_decoder.weight": torch.zeros(2)})
    torch.save({**state, "model_state_dict": newer}, tmp_path / "newer.pth")
    vita = {"module.model.action_mapper.0.weight": torch.zeros(2), "module.seer.action_decoder.0.weight": torch.zeros(2)}
    torch.save({"model_state_dict": vita}, tmp_path / "vita.pth")
    (tmp_path / "ds" / "global_step10").mkdir(parents=True)
    (tmp_path / "ds" / "latest").write_text("global_step10")
    torch.save({"module": {}}, tmp_path / "ds" / "global_step10" / "mp_rank_00_model_states.pt")
    cases = [
        ({"vit-checkpoint-path": None}, "pass --vit-checkpoint-path FILE: the frozen MAE ViT-B/16 encoder, what upstream calls mae_pretrain_vit_base.pth"),
        ({"clip-checkpoint-path": str(tmp_path / "none.pt")}, "none.pt: no such file (the frozen OpenAI CLIP ViT-B/32, what upstream calls ViT-B-32.pt"),
        ({"vit-checkpoint-path": str(FIXTURES / "ViT-B-32.pt")}, "ViT-B-32.pt is OpenAI CLIP (ViT-B-32.pt), not the MAE ViT encoder Seer freezes"),
        ({"clip-checkpoint-path": str(FIXTURES / "mae_pretrain_vit_base.pth")}, "is an MAE ViT (mae_pretrain_vit_base.pth), not OpenAI CLIP ViT-B/32"),
        ({"source": str(tmp_path / "vita.pth")}, "vita.pth is a VITA-VLA checkpoint (keys like model.action_mapper.0.weight); use --kind vita-vla"),
        ({"source": str(tmp_path / "ds")}, f"is a DeepSpeed checkpoint folder; pass the model file inside it: {tmp_path / 'ds' / 'global_step10' / 'mp_rank_00_model_states.pt'}"),
        ({"source": str(tmp_path / "newer.pth")}, "1 keys unknown to the Seer layout this importer reads (OpenRobotLab/Seer ee228e1; a newer upstream version?): goal_image_decoder.weight"),
    ]
    for i, (overrides, message) in enumerate(cases):
        code = main(import_args(tmp_path / f"out{i}", **overrides))  # the CLI in this process (same code path)
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], (overrides, lines)
        assert not (tmp_path / f"out{i}").exists()


def test_full_size_release_shapes_map_onto_the_model_on_the_meta_device():
    """The released files at full size (key -> shape of upstream's classes at LIBERO settings, recorded by
    the generator) map onto a SeerModel built from checkpoints/configs/seer-libero.json: no weight
    missing, unexpected or mis-shaped."""
    from vla_bench.models.checkpoint import CheckpointConfig, check_state_dict
    from vla_bench.models.importers.seer import CLIP_SCALARS, COMPUTED, map_seer_state_dict
    from vla_bench.models.seer import SeerModel

    shapes = json.loads((FIXTURES / "full_size_shapes.json").read_text())
    meta = lambda names, prefix="": {prefix + k: torch.empty(v, device="meta") for k, v in names.items()}  # noqa: E731
    state = {k.removeprefix("module."): v for k, v in meta(shapes["seer_trainable.pth"]).items()}
    assert not any(k.startswith(("vision_encoder.", "clip_model.")) for k in state)  # trainable weights only
    state.update(meta(shapes["mae_pretrain_vit_base.pth"], "vision_encoder."))
    state.update(meta({k: v for k, v in shapes["ViT-B-32.pt"].items() if k not in CLIP_SCALARS}, "clip_model."))
    mapped, dropped = map_seer_state_dict(state)
    assert "clip_model.visual.conv1.weight" in dropped
    # The config users import a released LIBERO checkpoint with (docs/models.md).
    config = json.loads((FIXTURES.parents[2].parent / "checkpoints" / "configs" / "seer-libero.json").read_text())
    config = CheckpointConfig.from_dict({**config, "format": "vla_bench.checkpoint", "format_version": 1})
    from vla_bench.models.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(FIXTURES / "tokenizer")
    with torch.device("meta"):
        model = SeerModel.build(config, tokenizer=tokenizer)
    ours = model.state_dict()
    assert sum(v.numel() for v in ours.values()) > 200e6  # ViT-B 86M + CLIP text 63M + 24-layer backbone 42M + ...
    for key in COMPUTED:
        mapped.setdefault(key, ours[key])
    check_state_dict(ours, mapped, "full-size Seer release")  # (meta tensors share no storage: no tied aliases)


def test_a_bf16_training_save_is_converted_and_recorded(tmp_path, capsys):
    state = torch.load(FIXTURES / "seer_trainable.pth", weights_only=True)
    bf16 = {k: v.bfloat16() if v.is_floating_point() else v for k, v in state["model_state_dict"].items()}
    torch.save({**state, "model_state_dict": bf16}, tmp_path / "bf16.pth")
    assert main(import_args(tmp_path / "out", source=str(tmp_path / "bf16.pth"))) == 0
    floats = sum(1 for v in bf16.values() if v.is_floating_point())
    assert f"converted {floats} bfloat16 tensors of bf16.pth to float32" in capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "config.json").read_text())["model"]["imported"]
    assert record["converted_to_float32"]["checkpoint"] == {"bfloat16": floats}
    weights = from_pretrained(tmp_path / "out").state_dict()
    assert weights["action_pred_token"].dtype == torch.float32
    torch.testing.assert_close(weights["action_pred_token"], bf16["module.action_pred_token"].float(), atol=0, rtol=0)
