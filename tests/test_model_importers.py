"""Importers: a synthetic Seer-style .pth, and a VITA-VLA trainable-params .pth on a base VLM."""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest
import torch

from model_helpers import TINY_STUDENT, TINY_TEACHER, make_obs
from vla_bench.cli import main
from vla_bench.errors import VlaBenchError
from vla_bench.models import from_pretrained, read_config
from vla_bench.models.importers.seer import import_seer
from vla_bench.models.importers.vita_vla import import_vita
from vla_bench.models.seer import block_causal_mask


def seer_style(ours: dict[str, torch.Tensor], layers: int, text_layers: int) -> dict[str, torch.Tensor]:
    """Write our teacher's weights the way the Seer training code names them (timm MAE ViT, OpenAI CLIP)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in ours.items():
        if key.startswith(("vision_encoder.", "image_decoder.", "text_encoder.")):
            continue
        out[key] = value.clone()
    ve = "vision_encoder."
    out[ve + "cls_token"] = ours[ve + "embeddings.cls_token"]
    out[ve + "pos_embed"] = ours[ve + "embeddings.position_embeddings"]
    for kind in ("weight", "bias"):
        out[f"{ve}patch_embed.proj.{kind}"] = ours[f"{ve}embeddings.patch_embeddings.projection.{kind}"]
        out[f"{ve}norm.{kind}"] = ours[f"{ve}layernorm.{kind}"]

    def timm_block(src: str, dst: str) -> None:
        for kind in ("weight", "bias"):
            out[f"{dst}.norm1.{kind}"] = ours[f"{src}.layernorm_before.{kind}"]
            out[f"{dst}.norm2.{kind}"] = ours[f"{src}.layernorm_after.{kind}"]
            out[f"{dst}.attn.qkv.{kind}"] = torch.cat([ours[f"{src}.attention.{p}_proj.{kind}"] for p in "qkv"])
            out[f"{dst}.attn.proj.{kind}"] = ours[f"{src}.attention.o_proj.{kind}"]
            out[f"{dst}.mlp.fc1.{kind}"] = ours[f"{src}.mlp.fc1.{kind}"]
            out[f"{dst}.mlp.fc2.{kind}"] = ours[f"{src}.mlp.fc2.{kind}"]

    for i in range(layers):
        timm_block(f"vision_encoder.layers.{i}", f"vision_encoder.blocks.{i}")
    decoder_blocks = {int(m[1]) for k in ours if (m := re.match(r"image_decoder\.(\d+)\.", k))}
    for i in decoder_blocks:
        timm_block(f"image_decoder.{i}", f"image_decoder.{i}")

    tm = "text_encoder.text_model."
    out["clip_model.token_embedding.weight"] = ours[tm + "embeddings.token_embedding.weight"]
    out["clip_model.positional_embedding"] = ours[tm + "embeddings.position_embedding.weight"]
    out["clip_model.text_projection"] = ours["text_encoder.text_projection.weight"].t()
    for kind in ("weight", "bias"):
        out[f"clip_model.ln_final.{kind}"] = ours[f"{tm}final_layer_norm.{kind}"]
    for i in range(text_layers):
        src, dst = f"{tm}encoder.layers.{i}", f"clip_model.transformer.resblocks.{i}"
        for kind in ("weight", "bias"):
            out[f"{dst}.attn.in_proj_{kind}"] = torch.cat([ours[f"{src}.self_attn.{p}_proj.{kind}"] for p in "qkv"])
            out[f"{dst}.attn.out_proj.{kind}"] = ours[f"{src}.self_attn.out_proj.{kind}"]
            out[f"{dst}.ln_1.{kind}"] = ours[f"{src}.layer_norm1.{kind}"]
            out[f"{dst}.ln_2.{kind}"] = ours[f"{src}.layer_norm2.{kind}"]
            out[f"{dst}.mlp.c_fc.{kind}"] = ours[f"{src}.mlp.fc1.{kind}"]
            out[f"{dst}.mlp.c_proj.{kind}"] = ours[f"{src}.mlp.fc2.{kind}"]
    # Weights a released checkpoint also holds that inference never uses.
    out["vision_encoder.decoder_embed.weight"] = torch.zeros(4, 4)
    out["clip_model.visual.conv1.weight"] = torch.zeros(2, 3, 1, 1)
    out["clip_model.logit_scale"] = torch.tensor(4.6)
    out["action_projector.weight"] = torch.zeros(4, 4)
    return out


@pytest.fixture(scope="module")
def teacher():
    return from_pretrained(TINY_TEACHER)


def _seer_pth(tmp_path, teacher, edit=None):
    model = teacher.config.model
    ours = teacher.state_dict()
    state = {"module." + k: v for k, v in seer_style(ours, model["vision"]["layers"], model["text"]["layers"]).items()}
    mask = torch.zeros(block_causal_mask(7, teacher.tokens_a, teacher.tokens_b, 2 * teacher.foresight).shape)
    mask.masked_fill_(~block_causal_mask(7, teacher.tokens_a, teacher.tokens_b, 2 * teacher.foresight), float("-inf"))
    state["module.attention_mask"] = mask
    if edit:
        edit(state)
    path = tmp_path / "seer.pth"
    torch.save({"epoch": 3, "model_state_dict": state}, path)
    return path


def test_seer_importer_maps_a_seer_style_state_dict(tmp_path, teacher):
    pth = _seer_pth(tmp_path, teacher)
    report = import_seer(pth, read_config(TINY_TEACHER), TINY_TEACHER, tmp_path / "out")
    assert "clip_model.visual.conv1.weight" in report.dropped and "attention_mask" in report.dropped
    imported = from_pretrained(tmp_path / "out")
    theirs = imported.state_dict()
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, theirs[key]), key
    obs = [make_obs(np.random.default_rng(1), 224)]
    with torch.inference_mode():
        a1, _ = teacher.predict([teacher.encode_frames(obs)], [obs[0].instruction])
        a2, _ = imported.predict([imported.encode_frames(obs)], [obs[0].instruction])
    assert torch.equal(a1, a2)


def test_seer_importer_refuses_missing_and_unknown_weights(tmp_path, teacher):
    def edit(state):
        del state["module.vision_encoder.blocks.0.attn.qkv.weight"]
        state["module.action_decoder.9.weight"] = torch.zeros(1)  # inside a known module: the strict check names it

    pth = _seer_pth(tmp_path, teacher, edit)
    with pytest.raises(VlaBenchError) as err:
        import_seer(pth, read_config(TINY_TEACHER), TINY_TEACHER, tmp_path / "out")
    message = str(err.value)
    assert "3 missing: vision_encoder.layers.0.attention.k_proj.weight" in message
    assert "1 unexpected: action_decoder.9.weight" in message


def test_seer_importer_refuses_another_attention_mask_variant(tmp_path, teacher):
    def edit(state):
        state["module.attention_mask"] = torch.zeros_like(state["module.attention_mask"])

    with pytest.raises(VlaBenchError, match="not the block-causal mask"):
        import_seer(_seer_pth(tmp_path, teacher, edit), read_config(TINY_TEACHER), TINY_TEACHER, tmp_path / "out")


def test_import_checkpoint_cli(tmp_path, teacher, capsys):
    pth = _seer_pth(tmp_path, teacher)
    config = tmp_path / "seer-config.json"
    config.write_text((TINY_TEACHER / "config.json").read_text())
    args = ["import-checkpoint", "--kind", "seer", "--source", str(pth), "--config", str(config),
            "--tokenizer", str(TINY_TEACHER), "--output", str(tmp_path / "out")]
    assert main(args) == 0
    assert "dropped 5 pretraining-only weights" in capsys.readouterr().out
    assert main(args) == 2  # output exists
    assert main(["import-checkpoint", "--kind", "vita-vla", "--source", str(pth), "--config", str(config),
                 "--output", str(tmp_path / "o2")]) == 2
    assert "describes a 'seer' model" in capsys.readouterr().err


def test_vita_importer_applies_trainable_params_on_a_base_vlm(tmp_path):
    """The Qwen2.5-VL option (not the default VLM): trainable params on a transformers VLM folder."""
    from model_helpers import REPO
    from vla_bench.models.tiny import build_from_recipe

    qwen = build_from_recipe(REPO / "checkpoints" / "configs" / "tiny-student-qwen25vl.json", tmp_path / "qwen-student")
    student = from_pretrained(qwen)
    base = tmp_path / "base-vlm"
    torch.manual_seed(5)
    base_vlm = type(student.vlm)(student.vlm.config)  # a different (random) base model
    base_vlm.save_pretrained(base)
    student.tokenizer.save_pretrained(base)
    student.processor.save_pretrained(base)
    # The .pth: every head weight plus the language model's layers under Qwen2 names, DDP-prefixed.
    trainable = {f"module.{k}": v for k, v in student.state_dict().items() if not k.startswith("vlm.")}
    lm = "vlm.model.language_model."
    for key, value in student.state_dict().items():
        if key.startswith(lm):
            trainable["module.model." + key.removeprefix(lm)] = value
    torch.save({"model_state_dict": trainable}, tmp_path / "vita.pth")
    config = read_config(qwen)
    report = import_vita(tmp_path / "vita.pth", config, base, tmp_path / "out")
    assert report.renamed == len(trainable)
    imported = from_pretrained(tmp_path / "out")
    ours, theirs = student.state_dict(), imported.state_dict()
    for key in ours:
        if key.startswith("vlm.") and not key.startswith(lm):
            assert torch.equal(theirs[key], base_vlm.state_dict()[key.removeprefix("vlm.")]), key  # from the base
        else:
            assert torch.equal(theirs[key], ours[key]), key  # from the .pth

    del trainable["module.action_token"]
    torch.save({"model_state_dict": trainable}, tmp_path / "bad.pth")
    with pytest.raises(VlaBenchError, match="1 missing: action_token"):
        import_vita(tmp_path / "bad.pth", config, base, tmp_path / "out2")


def test_read_pth_errors(tmp_path):
    from vla_bench.models.importers import read_pth

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(VlaBenchError, match="not a torch checkpoint|holds objects"):
        read_pth(tmp_path / "junk.pth")
    torch.save({"model_state_dict": {"a": torch.zeros(1)}, "args": argparse.Namespace(lr=1e-4)}, tmp_path / "obj.pth")
    with pytest.raises(VlaBenchError, match="--trust-pickle"):
        read_pth(tmp_path / "obj.pth")
