"""Seer parity fixtures made by upstream code (OpenRobotLab/Seer), read by tests/test_seer_parity.py.

    # 1. upstream code and its pinned dependencies, outside the project (CPU torch comes from .venv):
    #    a checkout of OpenRobotLab/Seer at ee228e1 in SEER, and
    #    pip install --no-deps --target DEPS transformers==4.40.2 tokenizers==0.19.1 timm==0.9.16 \
    #        openai-clip==1.0.1 einops einops-exts ftfy wcwidth "huggingface-hub<1.0" requests urllib3 idna \
    #        charset-normalizer certifi omegaconf==2.1.2 antlr4-python3-runtime==4.8 setuptools==57.5.0 torchvision==0.28.0
    # 2. .venv/bin/python scripts/parity/seer_fixtures.py --seer SEER --deps DEPS
    #    (writes tests/fixtures/upstream/seer/; make seer-fixtures runs this)

Phase 1 (this interpreter, the project's env): render a short LIBERO episode with our LiberoEnv under
the vita-vla protocol (128 px, images as rendered), driven by a fixed seeded action sequence; store
the frames, our 8-D state and the raw robosuite eef pos/quat/finger joints.

Phase 2 (a child interpreter with DEPS and SEER first on sys.path, so upstream's pinned transformers,
timm and OpenAI CLIP are the ones imported): build upstream's `SeerAgent` at a reduced size (the
vision encoder, resampler and CLIP are swapped for small instances of upstream's own classes before
the weights are set), give every learnable weight random noise (so zero-initialised parts cannot hide
a wrong mapping; the fixed sin-cos tables and the attention mask stay as upstream computes them), and
save the files as upstream writes them:

    seer_trainable.pth          train.py: {"epoch", "model_state_dict": get_checkpoint(ddp_model),
                                "optimizer_state_dict", "lr_scheduler_state_dict"} (frozen parts left out)
    mae_pretrain_vit_base.pth   {"model": MAE ViT encoder weights}, as FAIR's MAE release
    ViT-B-32.pt                 OpenAI CLIP weights, fp16 like the release, as the state dict that
                                clip.load takes from the release's TorchScript archive

Then it runs upstream's eval wrapper (utils/eval_utils_libero.ModelWrapper: CLIP's preprocessing of
PIL images, the history queues with last-frame padding, temporal ensembling, the gripper
threshold) on the episode's frames, step by step, and stores the action chunks and the actions the
wrapper returns for the env. What running it on this machine took (no computation changes):
upstream's wrapper hard-codes "cuda", so .to("cuda") is mapped to the CPU; the model is wrapped in an
object with `.module` as DDP does; `clip.load` infers CLIP's head count as width // 64, so SeerAgent
gets the reduced CLIP directly, with CLIP's own `_transform(224)`; torchvision's detection-op fake
kernels are skipped (the PyPI wheel links CUDA torch). The gripper head's bias is shifted so the
episode's gripper probabilities straddle 0.5 (both env commands occur). No upstream file is copied.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "upstream" / "seer"
SEER_COMMIT = "ee228e1"
STEPS = 10  # > history (7): the window fills and slides; every chunk step is ensembled
SUITE, TASK, INIT = "libero_10", 0, 0

# Reduced sizes (upstream's LIBERO run: hidden 384, 24 layers, 12 heads; MAE ViT-B; CLIP ViT-B/32 text 512 x 12).
SIZES = {
    "sequence_length": 7, "num_resampler_query": 6, "num_obs_token_per_image": 9, "action_pred_steps": 3,
    "hidden_dim": 64, "transformer_layers": 2, "transformer_heads": 4,
    "vision": {"embed_dim": 48, "depth": 2, "num_heads": 3},
    "resampler": {"depth": 1, "dim_head": 16, "heads": 2},
    "clip": {"embed_dim": 24, "transformer_width": 16, "transformer_heads": 2, "transformer_layers": 1,
             "vision_width": 64, "vision_layers": 1, "vision_patch_size": 8, "image_resolution": 16},
}


def render(out: Path) -> None:
    """Phase 1: the episode's observations from our LIBERO env."""
    from vla_bench.envs import libero_env
    from vla_bench.envs.base import EnvSpec
    from vla_bench.specs import protocols

    protocol = protocols().get("vita-vla")
    spec = EnvSpec.from_protocol(protocol, SUITE, TASK, image_size=protocol.render_size)
    raws: list[dict[str, np.ndarray]] = []
    process_raw = libero_env.process_raw

    def capture(raw, *args, **kwargs):
        raws.append({k: np.array(raw[k]) for k in ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")})
        return process_raw(raw, *args, **kwargs)

    libero_env.process_raw = capture
    env = libero_env.LiberoEnv(spec)
    rng = np.random.default_rng(0)
    try:
        observations = [env.start(INIT, protocol.env_seed)]
        for step in range(STEPS - 1):  # smooth arm motion; the gripper closes half way
            action = np.concatenate([rng.uniform(-0.4, 0.4, 6), [1.0 if step >= STEPS // 2 else -1.0]])
            obs, _ = env.step(action)
            observations.append(obs)
    finally:
        env.close()
        libero_env.process_raw = process_raw
    views = protocol.cameras
    np.savez_compressed(
        out / "episode.npz",
        **{view: np.stack([o.images[view] for o in observations]) for view in views},
        state=np.stack([o.state for o in observations]),
        eef_pos=np.stack([r["robot0_eef_pos"] for r in raws]),
        eef_quat=np.stack([r["robot0_eef_quat"] for r in raws]),
        gripper_qpos=np.stack([r["robot0_gripper_qpos"] for r in raws]),
    )
    (out / "episode.json").write_text(json.dumps({
        "suite": SUITE, "task_id": TASK, "init_state": INIT, "protocol": "vita-vla", "env_seed": protocol.env_seed,
        "instruction": observations[0].instruction, "views": list(views), "steps": STEPS,
    }, indent=2) + "\n")


def upstream(out: Path, seer: Path) -> None:
    """Phase 2 (child interpreter, upstream's dependencies first on sys.path)."""
    import sys as _sys
    import types

    # torchvision's PyPI wheel links CUDA torch; only its detection ops' fake kernels need that.
    _sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    import torch
    from torch import nn

    _to = torch.Tensor.to

    def to_cpu(self, *args, **kwargs):  # upstream's eval wrapper hard-codes "cuda"
        args = tuple("cpu" if a == "cuda" else a for a in args)
        if kwargs.get("device") == "cuda":
            kwargs["device"] = "cpu"
        return _to(self, *args, **kwargs)

    torch.Tensor.to = to_cpu
    # Upstream's eval module sets MUJOCO_GL=osmesa on import; mujoco picks its GL backend when first
    # imported, so import the simulator stack first, the way our env sets it up (no frame is rendered here).
    from vla_bench.envs.libero_setup import ensure_ready

    ensure_ready()
    import robosuite  # noqa: F401
    from libero.libero.envs import OffScreenRenderEnv  # noqa: F401
    import clip
    import clip.model
    import transformers
    import timm
    from models import seer_model
    from models.perceiver_resampler import PerceiverResampler
    from models.vit_mae import MaskedAutoencoderViT
    from utils.eval_utils_libero import ModelWrapper
    from utils.train_utils import get_checkpoint

    full_size_shapes(out, seer_model, clip, get_checkpoint)
    torch.manual_seed(0)
    s = SIZES
    episode = json.loads((out / "episode.json").read_text())
    frames = np.load(out / "episode.npz")

    # Frozen parts at reduced size, made by upstream's classes, and saved in the released formats.
    v = s["vision"]
    mae = MaskedAutoencoderViT(patch_size=16, embed_dim=v["embed_dim"], depth=v["depth"], num_heads=v["num_heads"],
                               decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2, mlp_ratio=4,
                               norm_layer=lambda d: nn.LayerNorm(d, eps=1e-6))
    c = s["clip"]
    small_clip = clip.model.CLIP(c["embed_dim"], c["image_resolution"], c["vision_layers"], c["vision_width"], c["vision_patch_size"],
                                 77, 49408, c["transformer_width"], c["transformer_heads"], c["transformer_layers"])
    with torch.no_grad():
        for module in (mae, small_clip):
            for name, p in module.named_parameters():
                if p.requires_grad:  # pos_embed (fixed sin-cos) keeps upstream's table
                    p.add_(torch.randn_like(p) * (0.5 if p.dim() == 1 else 0.3 * p.std().clamp(min=0.05)))
        small_clip.half().float()  # the release holds fp16 weights; clip.load on the CPU makes them fp32
    encoder_keys = [k for k in mae.state_dict() if not k.startswith(("decoder", "mask_token"))]
    torch.save({"model": {k: mae.state_dict()[k] for k in encoder_keys}}, out / "mae_pretrain_vit_base.pth")
    torch.save({k: t.half() for k, t in small_clip.state_dict().items()}, out / "ViT-B-32.pt")
    # clip.load infers the head count as width // 64, so a reduced CLIP cannot go through it: hand
    # SeerAgent the reduced model with upstream's own image transform for the ViT-B/32 input size.
    seer_model.clip.load = lambda name, device: (small_clip, clip.clip._transform(224))

    # Upstream's SeerAgent, with the vision encoder and resampler built at the reduced widths.
    r = s["resampler"]
    seer_model.MaskedAutoencoderViT = lambda **kw: MaskedAutoencoderViT(
        patch_size=16, embed_dim=v["embed_dim"], depth=v["depth"], num_heads=v["num_heads"], decoder_embed_dim=16,
        decoder_depth=1, decoder_num_heads=2, mlp_ratio=4, norm_layer=kw["norm_layer"])
    seer_model.PerceiverResampler = lambda dim, num_latents, depth: PerceiverResampler(
        dim=v["embed_dim"], num_latents=num_latents, depth=r["depth"], dim_head=r["dim_head"], heads=r["heads"])
    model = seer_model.SeerAgent(
        finetune_type="libero_10", clip_device="cpu", vit_checkpoint_path=str(out / "mae_pretrain_vit_base.pth"),
        sequence_length=s["sequence_length"], num_resampler_query=s["num_resampler_query"],
        num_obs_token_per_image=s["num_obs_token_per_image"], calvin_input_image_size=224, patch_size=16,
        action_pred_steps=s["action_pred_steps"], obs_pred=True, transformer_layers=s["transformer_layers"],
        hidden_dim=s["hidden_dim"], transformer_heads=s["transformer_heads"], phase="evaluate", gripper_width=True)
    hidden, width = s["hidden_dim"], v["embed_dim"]
    model.RESAMPLER_hidden_dim = width  # the widths upstream hard-codes for ViT-B (768) and CLIP (512)
    model.cls_token_primary_projector = nn.Linear(width, hidden)
    model.cls_token_wrist_projector = nn.Linear(width, hidden)
    model.image_primary_projector = nn.Linear(width, hidden)
    model.image_wrist_projector = nn.Linear(width, hidden)
    model.text_projector = nn.Linear(c["embed_dim"], hidden)
    model.clip_model.requires_grad_(False)
    model.vision_encoder.requires_grad_(False)
    with torch.no_grad():  # every trainable weight random and non-zero
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * (0.3 if p.dim() == 1 else 0.5 * p.std().clamp(min=0.05)))
    model = model.float().eval()
    model._init_model_type()

    class DDPLike(nn.Module):
        """Names parameters `module.*` and exposes `.module`, as DistributedDataParallel does."""

        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.module = inner
            self.outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

        def forward(self, **kwargs):
            result = self.module(**kwargs)
            self.outputs.append((result[0].detach().clone(), result[1].detach().clone()))
            return result

    def run_episode(ddp_model: DDPLike) -> tuple[np.ndarray, np.ndarray]:
        """Upstream's eval wrapper over the episode (LIBERO_LONG eval.sh: --gripper_width --eval_libero_ensembling)."""
        wrapper = ModelWrapper(ddp_model, clip, model.image_processor, torch.float32, history_len=s["sequence_length"],
                               use_ensembling=True, ensembling_temp=0.01, libero_eval_max_steps=STEPS + 1,
                               action_pred_steps=s["action_pred_steps"], gripper_width=True)
        wrapper.device = "cpu"
        wrapper.reset()
        actions, chunks = [], []
        with torch.no_grad():
            for t in range(STEPS):
                obs = {"agentview_image": frames["agentview"][t], "robot0_eye_in_hand_image": frames["robot0_eye_in_hand"][t],
                       "robot0_eef_pos": frames["eef_pos"][t], "robot0_eef_quat": frames["eef_quat"][t],
                       "robot0_gripper_qpos": frames["gripper_qpos"][t]}
                actions.append(np.asarray(wrapper.step(obs, episode["instruction"], t), dtype=np.float64))
                arm, gripper = ddp_model.outputs[-1]
                selected = min(t, s["sequence_length"] - 1)  # the wrapper reads the last real (unpadded) step
                chunks.append(torch.cat([arm[0, selected], gripper[0, selected]], dim=-1).numpy().astype(np.float64))
        return np.stack(chunks), np.stack(actions)

    # Centre the gripper head on this episode, so its probabilities straddle 0.5 and the episode covers
    # both env commands: shift the bias to halfway between the two middle distinct logits (no chunk
    # value lands on the 0.5 threshold itself).
    probe_chunks, _ = run_episode(DDPLike(model))
    logits = np.unique(np.log(probe_chunks[:, :, 6] / (1 - probe_chunks[:, :, 6])))
    middle = len(logits) // 2
    with torch.no_grad():
        model.gripper_action_decoder[0].bias -= float((logits[middle - 1] + logits[middle]) / 2)

    ddp_model = DDPLike(model)
    optimizer = torch.optim.AdamW([p for p in ddp_model.parameters() if p.requires_grad], lr=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    torch.save({"epoch": 0, "model_state_dict": get_checkpoint(ddp_model), "optimizer_state_dict": optimizer.state_dict(),
                "lr_scheduler_state_dict": scheduler.state_dict()}, out / "seer_trainable.pth")
    chunks, actions = run_episode(ddp_model)
    with torch.no_grad():
        image = model.image_processor(__import__("PIL.Image").Image.fromarray(frames["agentview"][0])).numpy()
    text = clip.tokenize([episode["instruction"]])[0].numpy()
    clip_tokenizer_subset(clip, episode["instruction"], out / "tokenizer")
    np.savez_compressed(out / "expected.npz", chunks=chunks, actions=actions, text_tokens=text,
                        first_agentview_input=image)
    (out / "upstream.json").write_text(json.dumps({
        "repository": "OpenRobotLab/Seer", "commit": SEER_COMMIT, "sizes": SIZES,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "timm": timm.__version__,
                     "clip": "openai-clip 1.0.1", "numpy": np.__version__},
        "eval": "utils/eval_utils_libero.ModelWrapper, gripper_width=True, use_ensembling=True, ensembling_temp=0.01, fp32 CPU",
    }, indent=2) + "\n")


def full_size_shapes(out: Path, seer_model, clip, get_checkpoint) -> None:
    """Key -> shape of the released files at full size (LIBERO eval.sh settings), from upstream's classes
    built on the meta device (no weights): the trainable .pth, mae_pretrain_vit_base.pth, ViT-B-32.pt."""
    import torch
    from torch import nn

    from models.vit_mae import MaskedAutoencoderViT

    with torch.device("meta"):
        full_clip = clip.model.CLIP(512, 224, 12, 768, 32, 77, 49408, 512, 8, 12)  # ViT-B/32 (clip.model.build_model)
        load, torch_load = seer_model.clip.load, seer_model.torch.load
        seer_model.clip.load = lambda name, device: (full_clip, None)
        seer_model.torch.load = lambda *args, **kwargs: {"model": {}}  # the MAE file: shapes come from the class
        try:
            model = seer_model.SeerAgent(
                finetune_type="libero_10", clip_device="meta", vit_checkpoint_path="", sequence_length=7,
                num_resampler_query=6, num_obs_token_per_image=9, calvin_input_image_size=224, patch_size=16,
                action_pred_steps=3, obs_pred=True, transformer_layers=24, hidden_dim=384, transformer_heads=12,
                phase="evaluate", gripper_width=True)
        finally:
            seer_model.clip.load, seer_model.torch.load = load, torch_load
        model.clip_model.requires_grad_(False)
        model.vision_encoder.requires_grad_(False)

        class DDPLike(nn.Module):
            def __init__(self, inner: nn.Module) -> None:
                super().__init__()
                self.module = inner

        trainable = get_checkpoint(DDPLike(model))
        mae = {k: v for k, v in model.vision_encoder.state_dict().items() if not k.startswith(("decoder", "mask_token"))}
        shapes = {
            "seer_trainable.pth": {k: list(v.shape) for k, v in trainable.items()},
            "mae_pretrain_vit_base.pth": {k: list(v.shape) for k, v in mae.items()},
            "ViT-B-32.pt": {k: list(v.shape) for k, v in full_clip.state_dict().items()},
        }
    (out / "full_size_shapes.json").write_text(json.dumps(shapes, indent=1) + "\n")


def clip_tokenizer_subset(clip, text: str, out: Path) -> None:
    """The CLIP BPE tokenizer cut down to what `text` needs, saved with transformers' CLIPTokenizerFast.

    Token ids stay those of OpenAI CLIP's vocabulary; the merges kept are exactly the ones CLIP's BPE
    applies to the words of `text` (in their original order), so the cut-down tokenizer splits `text`
    as the full one does (the test compares its ids with clip.tokenize's, stored in expected.npz).
    """

    from clip.simple_tokenizer import basic_clean, whitespace_clean
    from transformers import CLIPTokenizerFast

    bpe = clip.clip._tokenizer
    used_merges: set[tuple[str, str]] = set()
    symbols: set[str] = {"<|startoftext|>", "<|endoftext|>"}
    for token in bpe.pat.findall(whitespace_clean(basic_clean(text)).lower()):
        word = [bpe.byte_encoder[b] for b in token.encode("utf-8")]
        word[-1] += "</w>"
        symbols.update(word)
        while len(word) > 1:  # merge the lowest-ranked adjacent pair, as BPE does
            pairs = [(a, b) for a, b in zip(word, word[1:]) if (a, b) in bpe.bpe_ranks]
            if not pairs:
                break
            first, second = min(pairs, key=lambda pair: bpe.bpe_ranks[pair])
            used_merges.add((first, second))
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == (first, second):
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
            symbols.update(word)
    out.mkdir(parents=True, exist_ok=True)
    vocab = {symbol: bpe.encoder[symbol] for symbol in sorted(symbols, key=lambda s: bpe.encoder[s])}
    (out / "vocab.json").write_text(json.dumps(vocab))
    merges = sorted(used_merges, key=lambda pair: bpe.bpe_ranks[pair])
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    tokenizer = CLIPTokenizerFast(vocab_file=str(out / "vocab.json"), merges_file=str(out / "merges.txt"),
                                  pad_token="<|endoftext|>", model_max_length=77)
    tokenizer.save_pretrained(str(out))
    for name in ("vocab.json", "merges.txt", "special_tokens_map.json"):
        (out / name).unlink(missing_ok=True)


def write_config(out: Path) -> None:
    """The vla_bench checkpoint config for the reduced sizes (what `import-checkpoint --config` takes)."""
    s, v, r, c = SIZES, SIZES["vision"], SIZES["resampler"], SIZES["clip"]
    clip_mean, clip_std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    config = {
        "architecture": "seer",
        "model": {
            "history": s["sequence_length"], "action_steps": s["action_pred_steps"], "hidden_size": s["hidden_dim"],
            "layers": s["transformer_layers"], "heads": s["transformer_heads"], "resampler_queries": s["num_resampler_query"],
            "resampler_depth": r["depth"], "resampler_heads": r["heads"], "resampler_dim_head": r["dim_head"],
            "foresight_tokens_per_image": s["num_obs_token_per_image"], "foresight_layers": 2, "foresight_heads": 16,
            "vision": {"hidden_size": v["embed_dim"], "layers": v["depth"], "heads": v["num_heads"],
                       "intermediate_size": 4 * v["embed_dim"], "patch_size": 16, "image_size": 224},
            "text": {"vocab_size": 49408, "hidden_size": c["transformer_width"], "layers": c["transformer_layers"],
                     "heads": c["transformer_heads"], "intermediate_size": 4 * c["transformer_width"], "max_length": 77,
                     "projection_dim": c["embed_dim"], "eos_token_id": 49407},
        },
        "preprocessing": {
            "image": {"size": 224, "library": "pil", "resize": "bicubic", "crop": "center", "mean": clip_mean, "std": clip_std,
                      "dtype": "float32"},
            "state": {"gripper": "qpos"},
        },
        "protocol": {"name": "vita-vla", "image_size": 224, "views": ["agentview", "robot0_eye_in_hand"],
                     "history": s["sequence_length"], "action_chunk": s["action_pred_steps"], "execution": "temporal_ensemble",
                     "ensemble_k": 0.01, "gripper": "threshold", "state": "euler", "flip_images": False},
    }
    (out / "seer-config.json").write_text(json.dumps(config, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seer", type=Path, required=True, help=f"checkout of OpenRobotLab/Seer (commit {SEER_COMMIT})")
    parser.add_argument("--deps", type=Path, help="folder holding upstream's pinned dependencies (pip --target)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--phase", choices=("all", "render", "upstream"), default="all")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    write_config(args.out)
    if args.phase in ("all", "render"):
        render(args.out)
    if args.phase == "upstream":
        upstream(args.out.resolve(), args.seer.resolve())
    elif args.phase == "all":
        if args.deps is None:
            parser.error("--deps is needed to run upstream's code")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(args.deps.resolve()), str(args.seer.resolve())])}
        subprocess.run([sys.executable, __file__, "--seer", str(args.seer), "--out", str(args.out.resolve()), "--phase", "upstream"],
                       env=env, check=True)

if __name__ == "__main__":
    main()
