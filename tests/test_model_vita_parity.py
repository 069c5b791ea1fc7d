"""The VITA-VLA student against upstream: fixtures made by upstream code (scripts/parity/vita_fixtures.py),
imported with `vla-bench import-checkpoint` in a fresh process, replayed through the real policy path."""

from __future__ import annotations

import dataclasses

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vla_bench.cli import main
from vla_bench.envs.base import Observation
from vla_bench.envs.obs import state_vector
from vla_bench.episodes import Episode
from vla_bench.models import from_pretrained
from vla_bench.policies.execution import ExecutionPolicy
from vla_bench.policies.vla_models import TorchChunkPredictor
from vla_bench.transforms import StateEncoding

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "upstream" / "vita"
CHUNK_TOLERANCE = 1e-4  # fp32 on both sides; measured max difference 3.0e-8 (docs/models.md)


def vla_bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VLA_BENCH_TORCH_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "vla_bench.cli", *args], capture_output=True, text=True, env=env, timeout=300)


def import_args(source: Path, output: Path, config: Path = FIXTURES / "student-config.json", base: Path = FIXTURES / "base-vlm") -> list[str]:
    return ["import-checkpoint", "--kind", "vita-vla", "--source", str(source), "--config", str(config),
            "--base-vlm", str(base), "--output", str(output)]


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vita") / "student"
    done = vla_bench(*import_args(FIXTURES / "vita_vla.pth", out))
    assert done.returncode == 0, done.stderr
    assert "converted 52 bfloat16 tensors of the pth to float32" in done.stdout  # bf16 training save, recorded
    assert json.loads((out / "config.json").read_text())["model"]["imported"]["converted_to_float32"]["pth"] == {"bfloat16": 52}
    return out


def replay(checkpoint: Path, mode: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """Feed the upstream episode's frames and robot state through our vita-vla policy (temporal
    ensembling, threshold gripper); returns our chunks, our executed actions, and the fixture."""
    episode = dict(np.load(FIXTURES / f"episode-{mode}.npz"))
    meta = json.loads((FIXTURES / "meta.json").read_text())["episode"]
    model = from_pretrained(checkpoint)
    preprocessing = dataclasses.replace(model.config.preprocessing, state=StateEncoding(mode))  # the checkpoint's state encoding
    model.config = dataclasses.replace(model.config, preprocessing=preprocessing)
    predictor = TorchChunkPredictor(model, image_size=meta["render"])
    chunks: list[np.ndarray] = []
    predict = predictor.predict

    def recorded(observations):
        out = predict(observations)
        chunks.append(out[0].copy())
        return out

    predictor.predict = recorded
    policy = ExecutionPolicy(predictor, mode="temporal_ensemble", gripper="threshold", steps=3, ensemble_k=0.01)
    key = Episode(meta["suite"], meta["task"], meta["init_state"], meta["seed"], 600)
    policy.start_episode(key)
    actions = []
    for t in range(len(episode["actions"])):
        state = state_vector("euler", episode["eef_pos"][t], episode["eef_quat"][t], episode["gripper_qpos"][t])
        obs = Observation(images={"agentview": episode["agentview"][t], "robot0_eye_in_hand": episode["wrist"][t]},
                          state=state, instruction=meta["instruction"], episode=key.key, step=t)
        actions.append(policy.infer([obs]).actions[0])
    return np.stack(chunks), np.stack(actions), episode


@pytest.mark.parametrize("mode", ["qpos", "command"], ids=["gripper_width", "gripper_command"])
def test_upstream_action_chunks_and_env_actions(imported, mode):
    chunks, actions, upstream = replay(imported, mode)
    assert chunks.shape == upstream["chunks"].shape == (10, 3, 7)
    assert np.abs(chunks - upstream["chunks"]).max() < CHUNK_TOLERANCE
    assert np.array_equal(actions[:, 6], upstream["actions"][:, 6])  # gripper commands identical
    assert np.abs(actions[:, :6] - upstream["actions"][:, :6]).max() < CHUNK_TOLERANCE
    # the chunks move with the inputs (history windows of 1..7 turns, then sliding)
    assert np.abs(np.diff(upstream["chunks"][:, 0, :6], axis=0)).max() > 1e-5


def test_fixture_weights_are_not_trivial():
    """Every upstream tensor is noised: none is constant, so a wrong mapping cannot hide."""
    from safetensors.torch import load_file

    state = load_file(str(FIXTURES / "base-vlm" / "model.safetensors"))
    state.update(torch.load(FIXTURES / "vita_vla.pth", weights_only=True)["model_state_dict"])
    constant = [k for k, v in state.items() if v.numel() > 1 and float(v.float().std()) == 0.0]
    assert not constant


# -- bad input: one line naming the problem, exit 2 ----------------------------------------------


def _fail(capsys, args: list[str], expected: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_bad_input_one_line_in_a_fresh_process(tmp_path):
    done = vla_bench(*import_args(tmp_path / "missing.pth", tmp_path / "out"))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "missing.pth: no such file" in done.stderr


def test_bad_inputs(tmp_path, capsys):
    out = str(tmp_path / "out")
    # a Seer .pth where a VITA-VLA one is expected
    torch.save({"model_state_dict": {"module.transformer_backbone.h.0.ln_1.weight": torch.ones(4),
                                     "module.perceiver_resampler.latents": torch.ones(2, 4)}}, tmp_path / "seer.pth")
    _fail(capsys, import_args(tmp_path / "seer.pth", Path(out)), "is a Seer checkpoint (perceiver_resampler, transformer_backbone), not a VITA-VLA one; import it with --kind seer")
    # a DeepSpeed checkpoint folder where the file is expected
    (tmp_path / "run" / "global_step10").mkdir(parents=True)
    torch.save({"module": {}}, tmp_path / "run" / "global_step10" / "mp_rank_00_model_states.pt")
    _fail(capsys, import_args(tmp_path / "run", Path(out)),
          f"is a DeepSpeed checkpoint folder; pass the model file inside it: {tmp_path}/run/global_step10/mp_rank_00_model_states.pt")
    # keys of a newer upstream layout
    state = torch.load(FIXTURES / "vita_vla.pth", weights_only=True)
    state["model_state_dict"]["module.model.vlm.model.vision_resampler.weight"] = torch.ones(16)
    state["model_state_dict"]["module.model.action_chunk_head.weight"] = torch.ones(3, 3)
    torch.save(state, tmp_path / "newer.pth")
    _fail(capsys, import_args(tmp_path / "newer.pth", Path(out)),
          "2 names this importer does not know (a newer upstream layout?): model.vlm.model.vision_resampler.weight, model.action_chunk_head.weight")
    # a weight the student needs is missing from the .pth
    state = torch.load(FIXTURES / "vita_vla.pth", weights_only=True)
    del state["model_state_dict"]["module.model.action_pred_token"]
    torch.save(state, tmp_path / "short.pth")
    _fail(capsys, import_args(tmp_path / "short.pth", Path(out)), "1 missing: action_token")
    # the base VLM folder missing, or of another model
    _fail(capsys, import_args(FIXTURES / "vita_vla.pth", Path(out), base=tmp_path / "nowhere"), "--base-vlm")
    other = tmp_path / "llama"
    shutil.copytree(FIXTURES / "base-vlm", other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    _fail(capsys, import_args(FIXTURES / "vita_vla.pth", Path(out), base=other), "is a 'llama' model (config.json model_type); expected VITA-1.5 (vita-Qwen2)")
    (other / "config.json").write_text(json.dumps({**config, "hidden_size": 128}))
    _fail(capsys, import_args(FIXTURES / "vita_vla.pth", Path(out), base=other), "does not have the sizes in --config: hidden_size 128 vs --config 64")
    # the config without the chat template's system prompt
    student = json.loads((FIXTURES / "student-config.json").read_text())
    del student["model"]["prompt"]["system"]
    (tmp_path / "no-system.json").write_text(json.dumps(student))
    _fail(capsys, import_args(FIXTURES / "vita_vla.pth", Path(out), config=tmp_path / "no-system.json"), "model.prompt.system is missing")
    assert not Path(out).exists()
