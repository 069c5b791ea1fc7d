"""Measure how far our Seer is from upstream's on the committed parity fixtures, and write the numbers
docs/models.md quotes to tests/fixtures/upstream/seer/difference.json (with machine, versions, date).

    .venv/bin/python scripts/parity/seer_measure.py      # make seer-parity-measure

The fixtures (made by scripts/parity/seer_fixtures.py from upstream code) are imported with
`vla-bench import-checkpoint`, then the episode's observations go through the seer policy; the action
chunks and the env actions are compared with upstream's. The same is measured with the image
pipeline this project used before (torch bilinear resize to 224, no crop) for comparison.
"""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "upstream" / "seer"


def run_episode(checkpoint: Path) -> tuple[np.ndarray, np.ndarray]:
    """Our chunks (T, 3, 7) and env actions (T, 7) over the fixture episode."""
    from vla_bench.envs.base import Observation
    from vla_bench.episodes import Episode
    from vla_bench.policies import PolicyContext, make_policy
    from vla_bench.specs import protocols

    meta = json.loads((FIXTURES / "episode.json").read_text())
    frames = np.load(FIXTURES / "episode.npz")
    policy = make_policy("seer", PolicyContext(protocol=protocols().get(meta["protocol"]), checkpoint=checkpoint))
    chunks: list[np.ndarray] = []
    predict = policy.predictor.predict

    def recording(observations):
        out = predict(observations)
        chunks.append(out[0])
        return out

    policy.predictor.predict = recording
    episode = Episode(meta["suite"], meta["task_id"], meta["init_state"], meta["env_seed"], meta["steps"])
    policy.reset(episode)
    actions = [policy.infer([Observation(images={v: frames[v][t] for v in meta["views"]}, state=frames["state"][t],
                                         instruction=meta["instruction"], episode=episode.key, step=t)])[0]
               for t in range(meta["steps"])]
    return np.stack(chunks), np.stack(actions)


def compare(chunks: np.ndarray, actions: np.ndarray, expected) -> dict:
    return {
        "chunks_max_abs_difference": float(np.abs(chunks - expected["chunks"]).max()),
        "chunks_mean_abs_difference": float(np.abs(chunks - expected["chunks"]).mean()),
        "arm_actions_max_abs_difference": float(np.abs(actions[:, :6] - expected["actions"][:, :6]).max()),
        "gripper_commands_equal": f"{int((actions[:, 6] == expected['actions'][:, 6]).sum())}/{len(actions)}",
    }


def main() -> None:
    import torch
    import transformers

    expected = np.load(FIXTURES / "expected.npz")
    upstream = json.loads((FIXTURES / "upstream.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "seer"
        subprocess.run([sys.executable, "-m", "vla_bench.cli", "import-checkpoint", "--kind", "seer",
                        "--source", str(FIXTURES / "seer_trainable.pth"),
                        "--vit-checkpoint-path", str(FIXTURES / "mae_pretrain_vit_base.pth"),
                        "--clip-checkpoint-path", str(FIXTURES / "ViT-B-32.pt"), "--tokenizer", str(FIXTURES / "tokenizer"),
                        "--config", str(FIXTURES / "seer-config.json"), "--output", str(out)], check=True, capture_output=True)
        results = {"preprocessing from the checkpoint (PIL bicubic, centre crop)": compare(*run_episode(out), expected)}
        config = json.loads((out / "config.json").read_text())
        config["preprocessing"]["image"].update(library="torch", resize="bilinear-antialias", crop="none")
        (out / "config.json").write_text(json.dumps(config))
        results["previous preprocessing (torch bilinear, no crop)"] = compare(*run_episode(out), expected)
    report = {
        "what": "our seer policy vs upstream Seer's eval wrapper on tests/fixtures/upstream/seer (10 LIBERO steps, fp32 CPU)",
        "upstream": f"{upstream['repository']} {upstream['commit']}",
        "results": results,
        "machine": f"{platform.machine()} {platform.processor() or ''} {platform.system()} {platform.release()}".strip(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
                     "numpy": np.__version__},
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    (FIXTURES / "difference.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
