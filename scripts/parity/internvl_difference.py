"""How far transformers' own InternVL classes are from VITA-1.5's image path, measured.

    python scripts/parity/internvl_difference.py      # writes bench/results/vita15-vs-internvl.{json,md}

Takes the upstream-made fixture (tests/fixtures/upstream/vita/), imports it, and feeds the fixture
episode's frames through (a) our VITA-1.5 image path (last InternViT layer, CLS dropped, x0.5,
pixel shuffle, mlp2x_gelu without LayerNorm), which reproduces upstream's action chunks, and (b)
transformers' `InternVLModel.get_image_features` holding the same weights (its projector's extra
LayerNorm at its initial weight 1 / bias 0; no x0.5). Reports the image-embedding differences, and
the action-chunk differences when (b)'s embeddings replace (a)'s in the student, for the full
InternVL path and for each of its two differences alone.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "upstream" / "vita"
RESULTS = REPO / "bench" / "results"


def main() -> int:
    from transformers import InternVLConfig, InternVLModel

    from vla_bench.cli import main as cli
    from vla_bench.models import from_pretrained
    from vla_bench.models.vita15 import pixel_shuffle, preprocess_images

    torch.set_num_threads(1)
    out = Path(tempfile.mkdtemp()) / "student"
    assert cli(["import-checkpoint", "--kind", "vita-vla", "--source", str(FIXTURES / "vita_vla.pth"), "--config",
                str(FIXTURES / "student-config.json"), "--base-vlm", str(FIXTURES / "base-vlm"), "--output", str(out)]) == 0
    student = from_pretrained(out)
    vlm = student.vlm
    cfg = student.config.model["vlm_config"]
    internvl = InternVLModel(InternVLConfig(vision_config={**cfg["vision_config"], "model_type": "internvl_vision"},
                                            text_config={**cfg["text_config"], "model_type": "qwen2"},
                                            downsample_ratio=0.5, projector_hidden_act="gelu",
                                            vision_feature_layer=-1, vision_feature_select_strategy="default")).eval()
    internvl.vision_tower.load_state_dict(vlm.vision_tower.state_dict())
    projector = internvl.multi_modal_projector
    projector.linear_1.load_state_dict(vlm.mm_projector[0].state_dict())
    projector.linear_2.load_state_dict(vlm.mm_projector[2].state_dict())

    episode = np.load(FIXTURES / "episode-qpos.npz")
    frames = [img for t in range(len(episode["actions"])) for img in (episode["agentview"][t], episode["wrist"][t])]
    pixels = preprocess_images(student.processor, frames)

    def internvl_path(layer_norm: bool, scale: float):
        def features(p):
            x = vlm.vision_tower(pixel_values=p).last_hidden_state[:, 1:]
            side = int(round(x.shape[1] ** 0.5))
            x = pixel_shuffle(x.reshape(x.shape[0], side, side, -1) * scale, 0.5)
            x = x.reshape(x.shape[0], -1, x.shape[-1])
            if layer_norm:
                x = projector.layer_norm(x)
            return projector.linear_2(projector.act(projector.linear_1(x)))
        return features

    with torch.inference_mode():
        ours = vlm.image_features(pixels)
        theirs = internvl.get_image_features(pixel_values=pixels).pooler_output
        assert torch.allclose(theirs, internvl_path(True, 1.0)(pixels), atol=1e-5)  # our re-statement of InternVL
        variants = {"transformers InternVLModel (LayerNorm, no x0.5)": internvl_path(True, 1.0),
                    "LayerNorm only (x0.5 kept)": internvl_path(True, 0.5),
                    "no x0.5 only (no LayerNorm)": internvl_path(False, 1.0)}
        rows = []
        for name, path in variants.items():
            emb = path(pixels)
            row = {"variant": name, "embedding_max_abs": float((emb - ours).abs().max()),
                   "embedding_mean_abs": float((emb - ours).abs().mean()),
                   "embedding_rel": float((emb - ours).norm() / ours.norm())}
            # action chunks of the student at the episode's last step (7-turn window) with these embeddings
            original = vlm.image_features
            chunks = []
            for fn in (original, path):
                vlm.image_features = fn
                frames_t = student.encode_frames([_obs(episode, t) for t in range(len(episode["actions"]))])
                arm, grip = student.predict([frames_t[-7:]], [json.loads((FIXTURES / "meta.json").read_text())["episode"]["instruction"]])
                chunks.append(torch.cat([arm, grip], -1)[0])
            vlm.image_features = original
            row["chunk_max_abs"] = float((chunks[1] - chunks[0]).abs().max())
            rows.append(row)
            print(row, flush=True)
    info = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "torch": torch.__version__,
            "transformers": __import__("transformers").__version__, "fixture": str(FIXTURES.relative_to(REPO)),
            "images": len(frames), "command": "python scripts/parity/internvl_difference.py"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vita15-vs-internvl.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2) + "\n")
    table = ["| variant vs VITA-1.5 | embedding max abs | mean abs | relative (L2) | action chunk max abs |", "|---|---:|---:|---:|---:|"]
    table += [f"| {r['variant']} | {r['embedding_max_abs']:.4g} | {r['embedding_mean_abs']:.4g} | {r['embedding_rel']:.3g} | {r['chunk_max_abs']:.3g} |" for r in rows]
    text = (f"# transformers InternVL vs VITA-1.5 image path\n\nCommand: `{info['command']}` ({info['date']}, torch {info['torch']}, "
            f"transformers {info['transformers']}). Same weights (the upstream-made fixture), {len(frames)} LIBERO frames; "
            "action chunks at the episode's last step (7-turn window).\n\n" + "\n".join(table) + "\n")
    (RESULTS / "vita15-vs-internvl.md").write_text(text)
    print(text)
    return 0


def _obs(episode, t):
    from vla_bench.envs.base import Observation
    from vla_bench.envs.obs import state_vector

    state = state_vector("euler", episode["eef_pos"][t], episode["eef_quat"][t], episode["gripper_qpos"][t])
    return Observation(images={"agentview": episode["agentview"][t], "robot0_eye_in_hand": episode["wrist"][t]}, state=state,
                       instruction="", episode="e", step=t)


if __name__ == "__main__":
    sys.exit(main())
