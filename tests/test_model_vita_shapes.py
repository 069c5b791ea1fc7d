"""The VITA-VLA converters at full size: VITA-1.5-7B's parameter names and shapes (InternViT-300M-448px,
mlp2x_gelu, Qwen2.5-7B) and a VITA-VLA `.pth`'s, written out here from the published architecture,
map onto the 7B student built on the `meta` device with nothing missing, extra or mis-shaped."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vla_bench.models.checkpoint import CheckpointConfig, check_state_dict
from vla_bench.models.importers.vita_vla import convert_vita15, convert_vita_vla
from vla_bench.models.tiny import RECIPES
from vla_bench.models.vita import VitaStudent
from vla_bench.models.vita15 import make_processor

CONFIG = RECIPES / "vita-vla-7b-student.json"
VIT, VIT_LAYERS, VIT_MLP, PATCHES = 1024, 24, 4096, (448 // 14) ** 2
HIDDEN, LAYERS, MLP, KV, VOCAB, TEACHER = 3584, 28, 18944, 512, 151665, 384


def meta(*shape: int) -> torch.Tensor:
    return torch.empty(*shape, device="meta")


def vita15_7b() -> dict[str, torch.Tensor]:
    """VITAQwen2ForCausalLM's state dict names and shapes for VITA-1.5-7B (embeddings resized to the tokenizer)."""
    s = {}
    v = "model.vision_tower.vision_tower."
    s[v + "embeddings.class_embedding"] = meta(1, 1, VIT)
    s[v + "embeddings.patch_embedding.weight"] = meta(VIT, 3, 14, 14)
    s[v + "embeddings.patch_embedding.bias"] = meta(VIT)
    s[v + "embeddings.position_embedding"] = meta(1, PATCHES + 1, VIT)
    for i in range(VIT_LAYERS):
        p = f"{v}encoder.layers.{i}."
        s.update({p + "attn.qkv.weight": meta(3 * VIT, VIT), p + "attn.qkv.bias": meta(3 * VIT),
                  p + "attn.proj.weight": meta(VIT, VIT), p + "attn.proj.bias": meta(VIT),
                  p + "mlp.fc1.weight": meta(VIT_MLP, VIT), p + "mlp.fc1.bias": meta(VIT_MLP),
                  p + "mlp.fc2.weight": meta(VIT, VIT_MLP), p + "mlp.fc2.bias": meta(VIT),
                  p + "norm1.weight": meta(VIT), p + "norm1.bias": meta(VIT), p + "norm2.weight": meta(VIT), p + "norm2.bias": meta(VIT),
                  p + "ls1": meta(VIT), p + "ls2": meta(VIT)})
    s.update({"model.mm_projector.0.weight": meta(HIDDEN, 4 * VIT), "model.mm_projector.0.bias": meta(HIDDEN),
              "model.mm_projector.2.weight": meta(HIDDEN, HIDDEN), "model.mm_projector.2.bias": meta(HIDDEN)})
    s["model.embed_tokens.weight"] = meta(VOCAB, HIDDEN)
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        s.update({p + "self_attn.q_proj.weight": meta(HIDDEN, HIDDEN), p + "self_attn.q_proj.bias": meta(HIDDEN),
                  p + "self_attn.k_proj.weight": meta(KV, HIDDEN), p + "self_attn.k_proj.bias": meta(KV),
                  p + "self_attn.v_proj.weight": meta(KV, HIDDEN), p + "self_attn.v_proj.bias": meta(KV),
                  p + "self_attn.o_proj.weight": meta(HIDDEN, HIDDEN),
                  p + "mlp.gate_proj.weight": meta(MLP, HIDDEN), p + "mlp.up_proj.weight": meta(MLP, HIDDEN),
                  p + "mlp.down_proj.weight": meta(HIDDEN, MLP),
                  p + "input_layernorm.weight": meta(HIDDEN), p + "post_attention_layernorm.weight": meta(HIDDEN)})
    s["model.norm.weight"] = meta(HIDDEN)
    s["lm_head.weight"] = meta(VOCAB, HIDDEN)
    return s


def vita_vla_pth() -> dict[str, torch.Tensor]:
    """A stage-2 VITA-VLA `.pth` (module. stripped): heads, Seer's decoder, the language model."""
    half = TEACHER // 2
    s = {"model.action_pred_token": meta(1, HIDDEN),
         "model.action_mapper.0.weight": meta(TEACHER, HIDDEN), "model.action_mapper.0.bias": meta(TEACHER),
         "model.action_mapper.2.weight": meta(TEACHER, TEACHER), "model.action_mapper.2.bias": meta(TEACHER),
         "model.action_mapper.4.weight": meta(TEACHER, TEACHER), "model.action_mapper.4.bias": meta(TEACHER),
         "model.arm_state_encoder.weight": meta(HIDDEN, 6), "model.arm_state_encoder.bias": meta(HIDDEN),
         "model.gripper_state_encoder.weight": meta(HIDDEN, 2), "model.gripper_state_encoder.bias": meta(HIDDEN),
         "model.state_projector.weight": meta(HIDDEN, 2 * HIDDEN), "model.state_projector.bias": meta(HIDDEN),
         "seer.action_decoder.0.weight": meta(half, TEACHER), "seer.action_decoder.0.bias": meta(half),
         "seer.action_decoder.2.weight": meta(half, half), "seer.action_decoder.2.bias": meta(half),
         "seer.arm_action_decoder.0.weight": meta(6, half), "seer.arm_action_decoder.0.bias": meta(6),
         "seer.gripper_action_decoder.0.weight": meta(1, half), "seer.gripper_action_decoder.0.bias": meta(1)}
    for key, value in vita15_7b().items():
        if key.startswith(("model.layers.", "model.norm.", "model.embed_tokens.", "model.mm_projector.", "lm_head.")):
            s["model.vlm." + key] = value
    return s


def test_7b_converters_cover_the_meta_student():
    data = json.loads(Path(CONFIG).read_text())
    data["model"]["prompt"]["system"] = "system prompt"
    data["model"]["vlm_config"]["text_config"]["vocab_size"] = VOCAB
    config = CheckpointConfig.from_dict(data)

    class Tok:  # the student reads only the pad id at build time
        pad_token_id = 0

    with torch.device("meta"):
        student = VitaStudent.build(config, tokenizer=Tok(), processor=make_processor(200, [0.5] * 3, [0.5] * 3))
    expected = student.state_dict()
    base = convert_vita15(vita15_7b())
    pth = convert_vita_vla(vita_vla_pth())
    assert not base.unknown and not pth.unknown
    assert base.dropped == ["lm_head.weight"] and pth.dropped == ["model.vlm.lm_head.weight"]
    check_state_dict(expected, {**base.mapped, **pth.mapped}, "VITA-1.5-7B + VITA-VLA .pth")
    heads = {k: v for k, v in expected.items() if not k.startswith("vlm.")}
    check_state_dict(heads, {k: v for k, v in pth.mapped.items() if not k.startswith("vlm.")}, "VITA-VLA .pth heads")
    params = sum(v.numel() for v in expected.values())
    assert 7.40e9 < params < 7.45e9, params  # 7.43 B: the LM without lm_head, InternViT-300M, projector, heads
