"""Random-weight checkpoints from the recipes in checkpoints/configs/ (no downloads).

    python -m vla_bench.models.tiny [--out checkpoints]     # what `make tiny-checkpoints` runs

A recipe is a checkpoint config.json plus how to build the tokenizer ("tokenizer": words and special
tokens for a word-level one, or "kind": "bpe" with a corpus for a byte-level BPE one like Qwen2's),
for a Qwen-VL student the image processor ("processor": patch sizes), and a "seed".
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import torch

from vla_bench.models.checkpoint import ARCHITECTURES, CheckpointConfig, ExpectedProtocol
from vla_bench.models.tokenizer import build_bpe_tokenizer, build_word_tokenizer
from vla_bench.transforms import Preprocessing

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "checkpoints" / "configs"
TINY = ("tiny-teacher", "tiny-student")


def _student_token_ids(vlm_config: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    ids = {
        "image_token_id": "<|image_pad|>",
        "video_token_id": "<|video_pad|>",
        "vision_start_token_id": "<|vision_start|>",
        "vision_end_token_id": "<|vision_end|>",
    }
    config = {key: tokenizer.convert_tokens_to_ids(token) for key, token in ids.items()}
    config.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    text = {**vlm_config["text_config"], "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    return {**vlm_config, **config, "text_config": text}


def build_tokenizer(spec: dict[str, Any]) -> Any:
    """The tokenizer a recipe describes: word-level (default) or byte-level BPE ("kind": "bpe")."""
    if spec.get("kind", "words") == "bpe":
        return build_bpe_tokenizer(spec["corpus"], spec["vocab_size"], spec.get("special_tokens", []), spec["pad"], spec["eos"])
    return build_word_tokenizer(spec["words"], spec.get("special_tokens", []), wrap=spec.get("wrap", False))


def build_from_recipe(recipe_path: Path, out: Path) -> Path:
    """Build a random-weight checkpoint directory `out` from a recipe file."""
    model_from_recipe(recipe_path).save_pretrained(out)
    return out


def model_from_recipe(recipe_path: Path):
    """The random-weight model a recipe file describes, in memory (built on torch's default device)."""
    recipe = json.loads(Path(recipe_path).read_text())
    torch.manual_seed(int(recipe.get("seed", 0)))
    tokenizer = build_tokenizer(recipe["tokenizer"])
    model_config = copy.deepcopy(recipe["model"])
    extra: dict[str, Any] = {}
    if recipe["architecture"] == "seer":
        text = model_config["text"]
        if len(tokenizer) > text["vocab_size"]:
            raise ValueError(f"{recipe_path}: tokenizer has {len(tokenizer)} tokens > text vocab_size {text['vocab_size']}")
        text["eos_token_id"] = tokenizer.eos_token_id
    elif model_config.get("vlm_class") == "VITA-1.5":
        from vla_bench.models.vita15 import make_processor

        text = model_config["vlm_config"]["text_config"]
        if len(tokenizer) > text["vocab_size"]:
            raise ValueError(f"{recipe_path}: tokenizer has {len(tokenizer)} tokens > text vocab_size {text['vocab_size']}")
        norm = recipe["normalisation"]
        extra["processor"] = make_processor(recipe["protocol"]["image_size"], norm["image_mean"], norm["image_std"])
    else:
        from vla_bench.models.vita import make_qwen_processor

        model_config["vlm_config"] = _student_token_ids(model_config["vlm_config"], tokenizer)
        p = recipe["processor"]
        norm = recipe["normalisation"]
        extra["processor"] = make_qwen_processor(recipe["protocol"]["image_size"], norm["image_mean"], norm["image_std"], p["patch_size"], p["merge_size"], p["temporal_patch_size"])
    config = CheckpointConfig(
        architecture=recipe["architecture"],
        model=model_config,
        normalisation=recipe.get("normalisation", {}),
        protocol=ExpectedProtocol.from_dict(recipe["protocol"]),
        preprocessing=Preprocessing.from_dict(recipe["preprocessing"]) if "preprocessing" in recipe else None,
    )
    return ARCHITECTURES.get(config.architecture).build(config, tokenizer=tokenizer, **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "checkpoints", help="parent folder of tiny-teacher/ and tiny-student/")
    args = parser.parse_args()
    for name in TINY:
        path = build_from_recipe(RECIPES / f"{name}.json", args.out / name)
        size = sum(f.stat().st_size for f in path.iterdir()) / 1e6
        print(f"{path}: {size:.1f} MB")


if __name__ == "__main__":
    main()
