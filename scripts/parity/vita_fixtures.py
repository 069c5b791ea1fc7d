"""Make the VITA-VLA student parity fixtures by running upstream code (tests/fixtures/upstream/vita/).

    python scripts/parity/vita_fixtures.py --vita-vla DIR --deps DIR [--shims DIR] [--out DIR]

Run it with this repository's .venv python (CPU torch 2.13, LIBERO); it puts upstream's own
environment first on sys.path:

- `--vita-vla DIR`: the VITA-VLA branch of Tencent/VITA (ef85f16) as a folder with its `models/`
  and `utils/` packages. The InternViT tower and projector modules are VITA-1.5's
  (VITA-MLLM/VITA `vita/model/multimodal_encoder/internvit/`, `vita/model/multimodal_projector/`),
  identical in the branch. Files of the branch that import packages not installable here, or
  modules the branch does not contain, are used reduced to the functions VITA-VLA's LIBERO eval
  calls (see the docstring of each file); no function body is changed except `cuda` -> `cpu`.
- `--deps DIR`: upstream's dependencies installed apart from ours, as the fixtures were made:
  `pip install --target DIR --no-deps transformers==4.45.2 tokenizers==0.20.3 huggingface_hub==0.23.4
   accelerate==0.30.1 timm==0.9.16 einops requests urllib3 idna certifi charset_normalizer`
  (VITA's requirements.txt pins transformers 4.41.1, whose Qwen2Model.forward takes no
  `cache_position`, which the branch's `custom_forward` passes; 4.45.2 runs it).
- `--shims DIR`: a folder with a `torchvision` import shim (PyPI has no torchvision for this CPU
  torch; timm and VITA's projector module import it at module level, the VITA-1.5 path never calls it).

What it does, as upstream does it:
1. builds a tiny InternViT (upstream `InternVisionModel`) and a tiny VITA-1.5
   (`VITAQwen2ForCausalLM`, InternViT tower, `mlp2x_gelu` projector, Qwen2) with random weights plus
   noise (so no zero-initialised part can hide a wrong mapping), rounded to bf16, and saves the
   base folder with `save_pretrained` (VITA's own parameter names) and a byte-level BPE tokenizer;
2. builds the VITA-VLA student with upstream `VITAVLA` (`build_vita` -> `load_pretrained_model`,
   given the `model_name` argument the branch's `build_vita` forgets to pass, on CPU); the
   teacher's decoder heads come from a stand-in for `build_seer` (the full Seer needs a CLIP
   download and the MAE checkpoint): `action_decoder`, `arm_action_decoder`,
   `gripper_action_decoder` as Seer defines them. Upstream loads the VLM in fp16; the generator
   puts the saved (bf16-exact) weights back in fp32, so the fixtures are fp32 references;
3. saves the trainable weights as upstream training does: `{"epoch", "model_state_dict":
   get_checkpoint(engine)}` with DeepSpeed's `module.` prefix, in bf16 (as bf16 training writes them);
4. runs upstream's LIBERO eval `ModelWrapper.step` (preprocess_image_vita, prepare_data_vita,
   the qwen2p5_instruct template, ACT ensembling k=0.01) closed loop in real LIBERO, set up as
   upstream's `evaluate_policy_ddp` does (128 px cameras, seed 42, init state 0, 5 zero-action
   steps), for `--steps` steps, twice: with `--gripper_width` (finger joints as the gripper state,
   as the training scripts set) and without (the last gripper command, as the eval script runs);
5. writes the base folder, the `.pth`, a student config for `vla-bench import-checkpoint`, and per
   episode the frames, robot state, upstream's action chunks and executed env actions.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[2]
SUITE, TASK, INIT, SEED = "libero_spatial", 0, 0, 42
RENDER = 128
SIZES = {
    "vision": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 448, "patch_size": 14},
    "text": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2},
    "teacher_width": 32,
}
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def noise_and_round(module, generator, scale: float = 0.05) -> None:
    """Every parameter += N(0, scale), then rounded to bf16 (so bf16 saves are exact)."""
    import torch

    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * scale)
            param.copy_(param.to(torch.bfloat16).float())


def build_tokenizer(folder: Path, system_prompt: str):
    """A byte-level BPE tokenizer like Qwen2's (a lone space is a token), saved with transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    sys.path.insert(0, str(REPO))
    from vla_bench.envs.libero_env import load_task

    task, _, _ = load_task(SUITE, TASK)
    corpus = [task.language, system_prompt, "user assistant system", "put the black bowl on the plate"] * 3
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<|endoftext|>", eos_token="<|im_end|>",
                                   additional_special_tokens=["<|im_start|>"], model_max_length=32768)
    fast.save_pretrained(str(folder))
    return fast


def build_upstream(work: Path, out: Path, seed: int):
    """Steps 1-3: the base VITA-1.5 folder, the upstream student and the trainable-weights .pth."""
    import torch
    from torch import nn
    from transformers import CLIPImageProcessor

    import models.vita.builder as vita_builder
    import models.vita.model.builder as model_builder
    import models.vita_vla as vita_vla
    from models.vita.model import VITAQwen2Config, VITAQwen2ForCausalLM
    from models.vita.model.multimodal_encoder.internvit.configuration_intern_vit import InternVisionConfig
    from models.vita.model.multimodal_encoder.internvit.modeling_intern_vit import InternVisionModel
    from utils.conversation import conv_templates
    from utils.train_utils_ds import get_checkpoint

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    system_prompt = conv_templates["qwen2p5_instruct"].system[0]

    # 1. InternViT folder (what mm_vision_tower points at) and the VITA-1.5 base folder.
    vit_dir = work / "InternViT-tiny"
    v = SIZES["vision"]
    vit_config = InternVisionConfig(hidden_size=v["hidden_size"], intermediate_size=v["intermediate_size"],
                                    num_hidden_layers=v["num_hidden_layers"], num_attention_heads=v["num_attention_heads"],
                                    image_size=v["image_size"], patch_size=v["patch_size"], qkv_bias=True,
                                    qk_normalization=False, norm_type="layer_norm", layer_norm_eps=1e-6,
                                    initializer_factor=0.1, use_flash_attn=False, drop_path_rate=0.0)
    vit = InternVisionModel(vit_config)
    noise_and_round(vit, generator)
    vit.save_pretrained(str(vit_dir))
    processor = CLIPImageProcessor(size={"shortest_edge": 448}, crop_size={"height": 448, "width": 448}, resample=3,
                                   do_center_crop=True, do_normalize=True, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)
    processor.save_pretrained(str(vit_dir))

    base_dir = work / "llava-vita15-tiny"  # VITAVLAModel requires 'llava' in the path
    tokenizer = build_tokenizer(base_dir, system_prompt)
    t = SIZES["text"]
    config = VITAQwen2Config(vocab_size=len(tokenizer), hidden_size=t["hidden_size"], intermediate_size=t["intermediate_size"],
                             num_hidden_layers=t["num_hidden_layers"], num_attention_heads=t["num_attention_heads"],
                             num_key_value_heads=t["num_key_value_heads"], max_position_embeddings=4096, rope_theta=1000000.0,
                             rms_norm_eps=1e-6, tie_word_embeddings=False, mm_vision_tower=str(vit_dir),
                             mm_projector_type="mlp2x_gelu", mm_hidden_size=v["hidden_size"] * 4, unfreeze_vision_tower=True,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                             bos_token_id=None, use_cache=False)
    base = VITAQwen2ForCausalLM(config)
    noise_and_round(base, generator)
    base.to(torch.bfloat16).save_pretrained(str(base_dir), safe_serialization=True)
    base_weights = {k: v.float() for k, v in base.state_dict().items()}

    # 2. The upstream student (build_vita -> load_pretrained_model), decoder heads for build_seer.
    d = SIZES["teacher_width"]

    class SeerDecoderHeads(nn.Module):
        """What VITAVLA reads from Seer: its action decoder MLP and the arm / gripper heads."""

        def __init__(self, hidden: int) -> None:
            super().__init__()
            half = hidden // 2
            self.action_decoder = nn.Sequential(nn.Linear(hidden, half), nn.ReLU(), nn.Linear(half, half), nn.ReLU())
            self.arm_action_decoder = nn.Sequential(nn.Linear(half, 6), torch.nn.Tanh())
            self.gripper_action_decoder = nn.Sequential(nn.Linear(half, 1), torch.nn.Sigmoid())

    vita_builder.load_pretrained_model = functools.partial(model_builder.load_pretrained_model, model_name=base_dir.name, device="cpu")
    vita_vla.build_seer = lambda args, clip_device_id: SeerDecoderHeads(args.action_decoder_dim)
    args = SimpleNamespace(vita_path=str(base_dir), vita_base=None, vita_type="qwen2p5_instruct", freeze_vlm=False,
                           action_pred_steps=3, action_decoder_dim=d, projector_type="mlp3x_gelu", gripper_width=True,
                           hidden_index=-1)
    student = vita_vla.VITAVLA(args, clip_device_id=0)
    student.float()
    missing, unexpected = student.model.vlm.load_state_dict(base_weights, strict=True)
    assert not missing and not unexpected
    for module in (student.model.action_mapper, student.model.arm_state_encoder, student.model.gripper_state_encoder,
                   student.model.state_projector, student.seer):
        noise_and_round(module, generator)
    with torch.no_grad():
        student.model.action_pred_token.copy_((torch.randn(student.model.action_pred_token.shape, generator=generator) * 0.5).to(torch.bfloat16).float())
    student.eval()

    # 3. The trainable-weights .pth, keys as the DeepSpeed engine names them ("module." + ...).
    class Engine(nn.Module):
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    engine = Engine(student)
    for param in student.seer.parameters():  # VITA-VLA trains the decoder it borrows from Seer
        param.requires_grad_(True)
    trainable = get_checkpoint(engine)
    torch.save({"epoch": 0, "model_state_dict": {k: v.to(torch.bfloat16) for k, v in trainable.items()}}, out / "vita_vla.pth")
    frozen = sorted({".".join(k.split(".")[:5]) for k, p in engine.named_parameters() if not p.requires_grad})
    return student, engine, tokenizer, base_dir, system_prompt, {"trainable": len(trainable), "frozen_modules": frozen}


def run_episode(engine, tokenizer, image_processor, gripper_width: bool, steps: int) -> dict:
    """Step 4 for one gripper-state mode: upstream ModelWrapper closed loop in LIBERO."""
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO))
    from vla_bench.envs.libero_env import load_task
    from utils.eval_utils_libero_vita import ModelWrapper

    from libero.libero.envs import OffScreenRenderEnv

    task, init_states, bddl = load_task(SUITE, TASK)
    engine.module.model.args.gripper_width = gripper_width
    chunks: list[np.ndarray] = []

    class Recorder:
        """engine.module as ModelWrapper calls it; records the (3, 7) chunk it reads ([:, -1])."""

        def __init__(self, module) -> None:
            self.module = module

        def __call__(self, **kwargs):
            arm, gripper = self.module(**kwargs)
            chunks.append(torch.cat([arm[0, -1], gripper[0, -1]], dim=-1).double().numpy())
            return arm, gripper

    holder = SimpleNamespace(module=Recorder(engine.module))
    wrapper = ModelWrapper(holder, tokenizer, image_processor, torch.float32, history_len=7, use_ensembling=True,
                           ensembling_temp=0.01, libero_eval_max_steps=600, action_pred_steps=3, gripper_width=gripper_width)
    env = OffScreenRenderEnv(bddl_file_name=bddl, camera_heights=RENDER, camera_widths=RENDER)
    env.reset()
    env.seed(SEED)
    obs = env.set_init_state(init_states[INIT])
    for _ in range(5):  # as upstream: the first query still sees `obs` from set_init_state
        env.step(np.zeros(7))
    wrapper.reset()
    record = {key: [] for key in ("agentview", "wrist", "eef_pos", "eef_quat", "gripper_qpos", "actions")}
    for step in range(steps):
        record["agentview"].append(obs["agentview_image"].copy())
        record["wrist"].append(obs["robot0_eye_in_hand_image"].copy())
        record["eef_pos"].append(obs["robot0_eef_pos"].copy())
        record["eef_quat"].append(obs["robot0_eef_quat"].copy())
        record["gripper_qpos"].append(obs["robot0_gripper_qpos"].copy())
        action = wrapper.step(obs, task.language, step)
        record["actions"].append(np.asarray(action, dtype=np.float64))
        obs, _, _, _ = env.step(action)
    env.close()
    out = {k: np.stack(v) for k, v in record.items()}
    out["chunks"] = np.stack(chunks)
    out["instruction"] = task.language
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vita-vla", type=Path, required=True)
    parser.add_argument("--deps", type=Path, required=True)
    parser.add_argument("--shims", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "upstream" / "vita")
    parser.add_argument("--work", type=Path, default=Path("/tmp/vita-parity-work"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    for path in (args.vita_vla, args.shims, args.deps):  # upstream's environment first
        if path is not None:
            sys.path.insert(0, str(path.resolve()))
    os.environ.setdefault("MUJOCO_GL", "egl")
    import numpy as np
    import torch
    import transformers

    torch.set_num_threads(1)
    import shutil

    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    student, engine, tokenizer, base_dir, system_prompt, saved = build_upstream(args.work, args.out, args.seed)
    image_processor = student.model.image_processor
    base_out = args.out / "base-vlm"
    if base_out.exists():
        shutil.rmtree(base_out)
    base_out.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
        if (base_dir / name).is_file():
            shutil.copy(base_dir / name, base_out / name)

    episodes = {}
    for mode, width in (("qpos", True), ("command", False)):
        episodes[mode] = run_episode(engine, tokenizer, image_processor, width, args.steps)
        ep = episodes[mode]
        np.savez_compressed(args.out / f"episode-{mode}.npz", **{k: v for k, v in ep.items() if k != "instruction"})
        print(f"{mode}: {args.steps} steps, gripper commands {ep['actions'][:, 6].tolist()}", flush=True)

    config = {
        "format": "vla_bench.checkpoint", "format_version": 1, "architecture": "vita-vla",
        "model": {
            "history": 7, "action_steps": 3, "gripper_state": "qpos", "teacher_width": SIZES["teacher_width"],
            "vlm_class": "VITA-1.5",
            "vlm_config": {
                "vision_config": {"hidden_size": SIZES["vision"]["hidden_size"], "intermediate_size": SIZES["vision"]["intermediate_size"],
                                  "num_hidden_layers": SIZES["vision"]["num_hidden_layers"], "num_attention_heads": SIZES["vision"]["num_attention_heads"],
                                  "image_size": [448, 448], "patch_size": [14, 14], "attention_bias": True, "use_qk_norm": False,
                                  "norm_type": "layer_norm", "layer_norm_eps": 1e-6, "hidden_act": "gelu", "use_mean_pooling": True},
                "text_config": {**SIZES["text"], "vocab_size": len(tokenizer), "max_position_embeddings": 4096, "rope_theta": 1000000.0,
                                "rms_norm_eps": 1e-6, "tie_word_embeddings": False},
                "projector": "mlp2x_gelu", "downsample_ratio": 0.5, "feature_scale": 0.5,
            },
            "prompt": {"template": "qwen2p5_instruct", "system": system_prompt},
        },
        "normalisation": {"image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD},
        # VITA-VLA's preprocess_image_vita: CLIP processor at 200 x 200 (PIL bicubic, crop 200) on the frame as rendered
        "preprocessing": {"image": {"size": 200, "library": "pil", "resize": "bicubic", "crop": "center",
                                    "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "dtype": "float32"},
                          "state": {"gripper": "qpos"}},
        "protocol": {"name": "vita-vla", "image_size": 200, "views": ["agentview", "robot0_eye_in_hand"], "history": 7,
                     "action_chunk": 3, "execution": "temporal_ensemble", "ensemble_k": 0.01, "gripper": "threshold",
                     "state": "euler", "flip_images": False},
    }
    (args.out / "student-config.json").write_text(json.dumps(config, indent=2) + "\n")
    meta = {
        "generator": "scripts/parity/vita_fixtures.py",
        "upstream": {"vita_vla": "Tencent/VITA branch VITA-VLA at ef85f16e78a575e4f6c967e28691038280f3d084",
                     "vita15": "VITA-MLLM/VITA 360de2214a92855213adc8ee7f5026018caa8d42 (InternViT tower, projector)"},
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "episode": {"suite": SUITE, "task": TASK, "init_state": INIT, "seed": SEED, "render": RENDER, "steps": args.steps,
                    "instruction": episodes["qpos"]["instruction"]},
        "saved": saved,
        "sizes": SIZES,
        "seconds": round(time.time() - start, 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"wrote {args.out} ({total / 1e6:.2f} MB) in {meta['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
