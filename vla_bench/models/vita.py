"""The VITA-VLA student: a VLM backbone (a transformers class named in the config) reading, per
timestep, one chat turn  user: `<image> <image> {instruction} <state>`  assistant: `<action> x3`,
over a history window of S turns in one sequence. A learned action token fills the three `<action>`
slots; the state encoder fills `<state>`; the final hidden states at the last turn's action slots go
through the action mapper (VLM width -> teacher width) and the teacher's action decoder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from vla_bench.envs.base import Observation
from vla_bench.errors import VlaBenchError
from vla_bench.models.base import VlaModel, check_observation
from vla_bench.models.checkpoint import ARCHITECTURES, CheckpointConfig, CheckpointError
from vla_bench.models.heads import ActionDecoderMixin, StateEncoderMixin
from vla_bench.models.tokenizer import TOKENIZER_FILE, load_tokenizer

PROCESSOR_FILE = "preprocessor_config.json"

# VLM classes the student knows how to drive: the class name -> its config class name.
VLM_CLASSES = {
    "Qwen2_5_VLForConditionalGeneration": "Qwen2_5_VLConfig",
    "Qwen2VLForConditionalGeneration": "Qwen2VLConfig",
}

# Token kinds in a built sequence.
TEXT, IMAGE, STATE, ACTION, PAD = 0, 1, 2, 3, 4


def vlm_classes(name: str) -> tuple[type, type]:
    """The transformers model and config classes for a VLM class name; VlaBenchError if unknown."""
    import transformers

    if name not in VLM_CLASSES:
        raise CheckpointError(f"config.json model.vlm_class {name!r} is not a supported VLM class; supported: {', '.join(VLM_CLASSES)}")
    return getattr(transformers, name), getattr(transformers, VLM_CLASSES[name])


@dataclasses.dataclass
class StudentFrame:
    """One timestep's cached inputs: per-view image features (after the VLM's merger) and the state."""

    images: list[torch.Tensor]  # per view (tokens, H)
    grids: list[torch.Tensor]  # per view (3,) t, h, w patches
    state: torch.Tensor  # (8,)


@ARCHITECTURES.register("vita-vla")
class VitaStudent(StateEncoderMixin, ActionDecoderMixin, VlaModel):
    """VITA-VLA student on a transformers VLM."""

    architecture = "vita-vla"
    asset_files = (TOKENIZER_FILE, PROCESSOR_FILE)

    def __init__(self, config: CheckpointConfig, vlm: nn.Module, tokenizer: Any, processor: Any) -> None:
        super().__init__(config)
        m = config.model
        self.vlm = vlm
        self.tokenizer = tokenizer
        self.processor = processor
        hidden = self.vlm_hidden
        width = int(m["teacher_width"])
        self.action_token = nn.Parameter(torch.randn(1, hidden) * 0.02)
        self._build_state_encoder(hidden)
        self.action_mapper = nn.Sequential(
            nn.Linear(hidden, width), nn.GELU(), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width)
        )
        self._build_action_decoder(width)
        vlm_config = self.vlm.config
        self.image_token_id = int(vlm_config.image_token_id)
        self.vision_start_id = int(vlm_config.vision_start_token_id)
        self.vision_end_id = int(vlm_config.vision_end_token_id)
        self.pad_id = int(tokenizer.pad_token_id)
        prompt = m.get("prompt", {})
        self._user = self._ids(prompt.get("user", "<|im_start|>user\n"))
        self._assistant = self._ids(prompt.get("assistant", "<|im_end|>\n<|im_start|>assistant\n"))
        self._end = self._ids(prompt.get("end", "<|im_end|>\n"))
        self._instruction_ids: dict[str, list[int]] = {}

    @property
    def vlm_hidden(self) -> int:
        config = self.vlm.config
        text = getattr(config, "text_config", config)
        return int(text.hidden_size)

    @classmethod
    def build(cls, config: CheckpointConfig, assets: Path | None = None, tokenizer: Any = None, processor: Any = None) -> VitaStudent:
        model_class, config_class = vlm_classes(config.model.get("vlm_class", ""))
        if "vlm_config" not in config.model:
            raise CheckpointError("config.json model.vlm_config is missing (the VLM's transformers config)")
        vlm_config = config_class(**config.model["vlm_config"])
        vlm_config._attn_implementation = "sdpa"
        vlm = model_class(vlm_config)
        if tokenizer is None or processor is None:
            if assets is None:
                raise CheckpointError("a VITA-VLA model needs tokenizer and processor files")
            tokenizer = tokenizer or load_tokenizer(assets)
            processor = processor or load_processor(assets)
        return cls(config, vlm, tokenizer, processor)

    def save_assets(self, path: Path) -> None:
        self.tokenizer.save_pretrained(str(path))
        self.processor.save_pretrained(str(path))

    # -- sequence building ---------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _turn(self, frame: StudentFrame, instruction: list[int]) -> tuple[list[int], list[int]]:
        ids, kinds = list(self._user), [TEXT] * len(self._user)
        for features in frame.images:
            ids += [self.vision_start_id] + [self.image_token_id] * features.shape[0] + [self.vision_end_id]
            kinds += [TEXT] + [IMAGE] * features.shape[0] + [TEXT]
        ids += instruction + [self.pad_id] + self._assistant + [self.pad_id] * self.action_steps + self._end
        kinds += [TEXT] * len(instruction) + [STATE] + [TEXT] * len(self._assistant) + [ACTION] * self.action_steps + [TEXT] * len(self._end)
        return ids, kinds

    def _instruction(self, text: str) -> list[int]:
        if text not in self._instruction_ids:
            self._instruction_ids[text] = self._ids(" " + text)
        return self._instruction_ids[text]

    # -- forward -------------------------------------------------------------------------------
    def image_features(self, images: Sequence[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Frozen vision tower: HxWx3 uint8 images -> per-image (tokens, H) features and (N, 3) grids."""
        inputs = self.processor(images=[np.asarray(img) for img in images], return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        grids = inputs["image_grid_thw"].to(self.device)
        features = self.vlm.model.get_image_features(pixels, grids).pooler_output
        return list(features), grids

    def encode_frames(self, observations: Sequence[Observation]) -> list[StudentFrame]:
        for obs in observations:
            check_observation(obs, self.views, "policy 'vita-vla'")
        images = [obs.images[view] for obs in observations for view in self.views]
        features, grids = self.image_features(images)
        n = len(self.views)
        return [
            StudentFrame(
                images=features[i * n : (i + 1) * n],
                grids=list(grids[i * n : (i + 1) * n]),
                state=torch.as_tensor(np.asarray(obs.state, dtype=np.float32), device=self.device),
            )
            for i, obs in enumerate(observations)
        ]

    def action_features(self, windows: Sequence[Sequence[StudentFrame]], instructions: Sequence[str]) -> torch.Tensor:
        """Final-layer hidden states at the action slots of every turn: (B, T, 3, H); T = longest window
        (shorter windows are left-padded and their missing turns are zeros)."""
        sequences = []
        for window, text in zip(windows, instructions):
            instruction = self._instruction(text)
            ids: list[int] = []
            kinds: list[int] = []
            for frame in window:
                turn_ids, turn_kinds = self._turn(frame, instruction)
                ids += turn_ids
                kinds += turn_kinds
            sequences.append((ids, kinds))
        length = max(len(ids) for ids, _ in sequences)
        device = self.device
        input_ids = torch.full((len(windows), length), self.pad_id, dtype=torch.long)
        kinds_t = torch.full((len(windows), length), PAD, dtype=torch.long)
        for row, (ids, kinds) in enumerate(sequences):  # left padding: the last turn ends every row
            input_ids[row, length - len(ids) :] = torch.tensor(ids)
            kinds_t[row, length - len(ids) :] = torch.tensor(kinds)
        input_ids, kinds_t = input_ids.to(device), kinds_t.to(device)
        attention = (kinds_t != PAD).long()

        embed = self.vlm.get_input_embeddings()
        inputs = embed(input_ids)
        image_rows = torch.cat([f for window in windows for frame in window for f in frame.images]).to(inputs.dtype)
        inputs = inputs.masked_scatter((kinds_t == IMAGE)[..., None], image_rows)
        states = torch.stack([frame.state for window in windows for frame in window]).to(inputs.dtype)
        inputs = inputs.masked_scatter((kinds_t == STATE)[..., None], self.encode_state(states))
        action_slots = kinds_t == ACTION
        inputs = torch.where(action_slots[..., None], self.action_token.to(inputs.dtype), inputs)

        grids = torch.stack([g for window in windows for frame in window for g in frame.grids])
        mm_types = (kinds_t == IMAGE).int()
        position_ids, _ = self.vlm.model.get_rope_index(input_ids, mm_types, image_grid_thw=grids, attention_mask=attention)
        hidden = self.vlm.model.language_model(inputs_embeds=inputs, position_ids=position_ids, attention_mask=attention).last_hidden_state

        steps = max(len(w) for w in windows)
        out = hidden.new_zeros(len(windows), steps, self.action_steps, hidden.shape[-1])
        for row, window in enumerate(windows):
            slots = hidden[row][action_slots[row]].view(len(window), self.action_steps, -1)
            out[row, steps - len(window) :] = slots
        return out

    def predict(self, windows: Sequence[Sequence[StudentFrame]], instructions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.action_features(windows, instructions)[:, -1]
        return self.decode_actions(self.action_mapper(features))


def load_processor(path: Path) -> Any:
    """The image processor saved in a checkpoint directory."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if not (Path(path) / PROCESSOR_FILE).is_file():
        raise VlaBenchError(f"checkpoint {path}: missing {PROCESSOR_FILE}")
    return Qwen2VLImageProcessorPil.from_pretrained(str(path))


def make_processor(image_size: int, mean: Sequence[float], std: Sequence[float], patch_size: int, merge_size: int, temporal_patch_size: int) -> Any:
    """A Qwen2-VL image processor that maps image_size x image_size inputs to a fixed token grid."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    factor = patch_size * merge_size
    side = max(factor, round(image_size / factor) * factor)
    return Qwen2VLImageProcessorPil(
        min_pixels=side * side, max_pixels=side * side, patch_size=patch_size, merge_size=merge_size,
        temporal_patch_size=temporal_patch_size, image_mean=list(mean), image_std=list(std),
    )
