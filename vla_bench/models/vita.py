"""The VITA-VLA student: a VLM reading, per timestep, one chat turn  user: `<image> <image>
{instruction} <state>`  assistant: `<action> x3`, over a history window of up to S turns in one
sequence. A learned action token fills the three `<action>` slots; the state encoder fills
`<state>`; the final hidden states at the last turn's action slots go through the action mapper
(VLM width -> teacher width) and the teacher's action decoder.

The VLM is a backend named by `model.vlm_class` (registry `VLM_BACKENDS`):
- `VITA-1.5` (default, what VITA-VLA trains on): InternViT + pixel shuffle + MLP projector + Qwen2,
  VITA's CLIP image processor and the qwen2p5_instruct chat template (vita15.py);
- `Qwen2_5_VLForConditionalGeneration` / `Qwen2VLForConditionalGeneration`: for students trained
  on Qwen2.5-VL / Qwen2-VL (M-RoPE positions, vision start/end tokens around each image).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from vla_bench.envs.base import Observation
from vla_bench.errors import VlaBenchError
from vla_bench.models.base import VlaModel, check_observation
from vla_bench.models.checkpoint import ARCHITECTURES, CheckpointConfig, CheckpointError
from vla_bench.models.heads import ActionDecoderMixin, StateEncoderMixin
from vla_bench.models.tokenizer import TOKENIZER_FILE, load_tokenizer
from vla_bench.registry import Registry

PROCESSOR_FILE = "preprocessor_config.json"
DEFAULT_VLM = "VITA-1.5"

# Token kinds in a built sequence.
TEXT, IMAGE, STATE, ACTION, PAD = 0, 1, 2, 3, 4


@dataclasses.dataclass
class StudentFrame:
    """One timestep's cached inputs: per-view image embeddings (language-model width) and the state."""

    images: list[torch.Tensor]  # per view (tokens, H)
    grids: list[torch.Tensor]  # per view (3,) t, h, w patches (Qwen-VL backends; empty otherwise)
    state: torch.Tensor  # (8,)


class VlmBackend:
    """How the student drives one kind of VLM: build it, preprocess images, lay out the tokens of a
    window and run the language model over the filled-in embeddings."""

    name: ClassVar[str]

    def build(self, vlm_config: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    def hidden_size(self, vlm: nn.Module) -> int:
        raise NotImplementedError

    def load_processor(self, path: Path) -> Any:
        raise NotImplementedError

    def image_features(self, student: "VitaStudent", images: Sequence[np.ndarray]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """HxWx3 uint8 images -> per-image (tokens, H) embeddings and per-image grids (may be empty)."""
        raise NotImplementedError

    def window_tokens(self, student: "VitaStudent", window: Sequence[StudentFrame], instruction: str) -> tuple[list[int], list[int]]:
        """Token ids and kinds of one window's whole sequence (placeholders expanded)."""
        raise NotImplementedError

    def language_model(self, student: "VitaStudent", inputs: torch.Tensor, input_ids: torch.Tensor, kinds: torch.Tensor,
                       attention: torch.Tensor, windows: Sequence[Sequence[StudentFrame]]) -> torch.Tensor:
        """Final-layer hidden states (B, L, H) of the language model over `inputs` embeddings."""
        raise NotImplementedError


VLM_BACKENDS: Registry[VlmBackend] = Registry("VLM class")


@VLM_BACKENDS.register("VITA-1.5")
class Vita15Backend(VlmBackend):
    """VITA-1.5 (InternViT + MLP projector + Qwen2), as VITA-VLA uses it."""

    name = "VITA-1.5"

    def build(self, vlm_config: dict[str, Any]) -> nn.Module:
        from vla_bench.models.vita15 import Vita15VLM

        return Vita15VLM(vlm_config)

    def hidden_size(self, vlm: nn.Module) -> int:
        return vlm.hidden_size

    def load_processor(self, path: Path) -> Any:
        from vla_bench.models.vita15 import load_processor

        return load_processor(path)

    def image_features(self, student, images):
        # The checkpoint's image pipeline (config.json `preprocessing.image`, vla_bench.transforms):
        # VITA-VLA's is CLIP's processor at 200 px = PIL bicubic 200 x 200, centre crop, mean/std,
        # applied to the frames as rendered.
        pipeline = student.transform.preprocessing.image
        pixels = torch.stack([pipeline(img) for img in images]).to(student.device, student.dtype)
        return list(student.vlm.image_features(pixels)), []

    def window_tokens(self, student, window, instruction):
        from vla_bench.models.vita15 import ACTION_MARK, IMAGE_MARK, STATE_MARK, render_prompt, tokenize_prompt

        key = (instruction, len(window))
        if key not in student._prompt_cache:
            prompt = render_prompt(student.prompt["system"], instruction, len(window), len(student.views), student.action_steps)
            student._prompt_cache[key] = tokenize_prompt(prompt, student.tokenizer)
        ids: list[int] = []
        kinds: list[int] = []
        images = iter([f.shape[0] for frame in window for f in frame.images])
        for token in student._prompt_cache[key]:
            if token == IMAGE_MARK:
                count = next(images)
                ids += [student.pad_id] * count
                kinds += [IMAGE] * count
            elif token in (STATE_MARK, ACTION_MARK):
                ids.append(student.pad_id)
                kinds.append(STATE if token == STATE_MARK else ACTION)
            else:
                ids.append(int(token))
                kinds.append(TEXT)
        return ids, kinds

    def language_model(self, student, inputs, input_ids, kinds, attention, windows):
        positions = (attention.cumsum(-1) - 1).clamp(min=0)  # 0..L-1 per sequence, as with no padding
        return student.vlm.language_model(inputs_embeds=inputs, attention_mask=attention, position_ids=positions).last_hidden_state


class QwenVLBackend(VlmBackend):
    """Qwen2.5-VL / Qwen2-VL from transformers: M-RoPE positions, vision start/end around each image."""

    config_class: ClassVar[str]

    def build(self, vlm_config):
        import transformers

        config = getattr(transformers, self.config_class)(**vlm_config)
        config._attn_implementation = "sdpa"
        return getattr(transformers, self.name)(config)

    def hidden_size(self, vlm):
        return int(getattr(vlm.config, "text_config", vlm.config).hidden_size)

    def load_processor(self, path):
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        return Qwen2VLImageProcessorPil.from_pretrained(str(path))

    def image_features(self, student, images):
        inputs = student.processor(images=[np.asarray(img) for img in images], return_tensors="pt")
        pixels = inputs["pixel_values"].to(student.device, student.dtype)
        grids = inputs["image_grid_thw"].to(student.device)
        return list(student.vlm.model.get_image_features(pixels, grids).pooler_output), list(grids)

    def _ids(self, student, text: str) -> list[int]:
        key = ("qwen-vl", text)
        if key not in student._prompt_cache:
            student._prompt_cache[key] = list(student.tokenizer(text, add_special_tokens=False)["input_ids"])
        return student._prompt_cache[key]

    def window_tokens(self, student, window, instruction):
        config = student.vlm.config
        image_id, start_id, end_id = int(config.image_token_id), int(config.vision_start_token_id), int(config.vision_end_token_id)
        user = self._ids(student, student.prompt.get("user", "<|im_start|>user\n"))
        assistant = self._ids(student, student.prompt.get("assistant", "<|im_end|>\n<|im_start|>assistant\n"))
        end = self._ids(student, student.prompt.get("end", "<|im_end|>\n"))
        text = self._ids(student, " " + instruction)
        ids: list[int] = []
        kinds: list[int] = []
        for frame in window:
            ids += user
            kinds += [TEXT] * len(user)
            for features in frame.images:
                ids += [start_id] + [image_id] * features.shape[0] + [end_id]
                kinds += [TEXT] + [IMAGE] * features.shape[0] + [TEXT]
            ids += text + [student.pad_id] + assistant + [student.pad_id] * student.action_steps + end
            kinds += [TEXT] * len(text) + [STATE] + [TEXT] * len(assistant) + [ACTION] * student.action_steps + [TEXT] * len(end)
        return ids, kinds

    def language_model(self, student, inputs, input_ids, kinds, attention, windows):
        grids = torch.stack([g for window in windows for frame in window for g in frame.grids])
        mm_types = (kinds == IMAGE).int()
        position_ids, _ = student.vlm.model.get_rope_index(input_ids, mm_types, image_grid_thw=grids, attention_mask=attention)
        return student.vlm.model.language_model(inputs_embeds=inputs, position_ids=position_ids, attention_mask=attention).last_hidden_state


@VLM_BACKENDS.register("Qwen2_5_VLForConditionalGeneration")
class Qwen25VLBackend(QwenVLBackend):
    name = "Qwen2_5_VLForConditionalGeneration"
    config_class = "Qwen2_5_VLConfig"


@VLM_BACKENDS.register("Qwen2VLForConditionalGeneration")
class Qwen2VLBackend(QwenVLBackend):
    name = "Qwen2VLForConditionalGeneration"
    config_class = "Qwen2VLConfig"


def vlm_backend(name: str) -> VlmBackend:
    """The backend for a `model.vlm_class` name; CheckpointError listing the supported ones if unknown."""
    if name not in VLM_BACKENDS:
        raise CheckpointError(f"config.json model.vlm_class {name!r} is not a supported VLM class; supported: {', '.join(VLM_BACKENDS.names())}")
    return VLM_BACKENDS.get(name)()


@ARCHITECTURES.register("vita-vla")
class VitaStudent(StateEncoderMixin, ActionDecoderMixin, VlaModel):
    """VITA-VLA student on a VLM backend."""

    architecture = "vita-vla"
    asset_files = (TOKENIZER_FILE, PROCESSOR_FILE)

    @property
    def transform_resizes(self) -> bool:  # type: ignore[override]
        """VITA-1.5 resizes in its checkpoint transform (frames come as rendered, as upstream feeds
        them); the Qwen-VL processors take frames the env resized to protocol.image_size."""
        return isinstance(self.backend, Vita15Backend)

    def __init__(self, config: CheckpointConfig, vlm: nn.Module, tokenizer: Any, processor: Any) -> None:
        super().__init__(config)
        m = config.model
        self.backend = vlm_backend(m.get("vlm_class", DEFAULT_VLM))
        self.vlm = vlm
        self.tokenizer = tokenizer
        self.processor = processor
        hidden = self.backend.hidden_size(vlm)
        width = int(m["teacher_width"])
        self.action_token = nn.Parameter(torch.randn(1, hidden) * 0.02)
        self._build_state_encoder(hidden)
        self.action_mapper = nn.Sequential(
            nn.Linear(hidden, width), nn.GELU(), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width)
        )
        self._build_action_decoder(width)
        if tokenizer.pad_token_id is None:
            raise CheckpointError("the student's tokenizer has no pad token")
        self.pad_id = int(tokenizer.pad_token_id)
        self.prompt: dict[str, Any] = dict(m.get("prompt", {}))
        if isinstance(self.backend, Vita15Backend) and "system" not in self.prompt:
            raise CheckpointError("config.json model.prompt.system is missing (the chat template's system prompt)")
        self._prompt_cache: dict[Any, Any] = {}

    @classmethod
    def build(cls, config: CheckpointConfig, assets: Path | None = None, tokenizer: Any = None, processor: Any = None) -> VitaStudent:
        backend = vlm_backend(config.model.get("vlm_class", DEFAULT_VLM))
        if "vlm_config" not in config.model:
            raise CheckpointError("config.json model.vlm_config is missing (the VLM's config)")
        vlm = backend.build(dict(config.model["vlm_config"]))
        if tokenizer is None or processor is None:
            if assets is None:
                raise CheckpointError("a VITA-VLA model needs tokenizer and processor files")
            tokenizer = tokenizer or load_tokenizer(assets)
            if not (Path(assets) / PROCESSOR_FILE).is_file():
                raise VlaBenchError(f"checkpoint {assets}: missing {PROCESSOR_FILE}")
            processor = processor or backend.load_processor(Path(assets))
        return cls(config, vlm, tokenizer, processor)

    def save_assets(self, path: Path) -> None:
        self.tokenizer.save_pretrained(str(path))
        self.processor.save_pretrained(str(path))

    # -- forward -------------------------------------------------------------------------------
    def encode_frames(self, observations: Sequence[Observation], last_commands: Sequence[float | None] | None = None) -> list[StudentFrame]:
        for obs in observations:
            check_observation(obs, self.views, "policy 'vita-vla'")
        commands = last_commands if last_commands is not None else [None] * len(observations)
        encode_state = self.transform.preprocessing.state  # the checkpoint's state encoding
        images = [obs.images[view] for obs in observations for view in self.views]
        features, grids = self.backend.image_features(self, images)
        n = len(self.views)
        return [
            StudentFrame(
                images=features[i * n : (i + 1) * n],
                grids=grids[i * n : (i + 1) * n],
                state=torch.as_tensor(encode_state(obs.state, commands[i]), device=self.device),
            )
            for i, obs in enumerate(observations)
        ]

    def action_features(self, windows: Sequence[Sequence[StudentFrame]], instructions: Sequence[str]) -> torch.Tensor:
        """Final-layer hidden states at the action slots of every turn: (B, T, 3, H); T = longest window
        (shorter windows are left-padded and their missing turns are zeros)."""
        sequences = [self.backend.window_tokens(self, window, text) for window, text in zip(windows, instructions)]
        length = max(len(ids) for ids, _ in sequences)
        device = self.device
        input_ids = torch.full((len(windows), length), self.pad_id, dtype=torch.long)
        kinds_t = torch.full((len(windows), length), PAD, dtype=torch.long)
        for row, (ids, kinds) in enumerate(sequences):  # left padding: the last turn ends every row
            input_ids[row, length - len(ids) :] = torch.tensor(ids)
            kinds_t[row, length - len(ids) :] = torch.tensor(kinds)
        input_ids, kinds_t = input_ids.to(device), kinds_t.to(device)
        attention = (kinds_t != PAD).long()

        inputs = self.vlm.get_input_embeddings()(input_ids)
        image_rows = torch.cat([f for window in windows for frame in window for f in frame.images]).to(inputs.dtype)
        inputs = inputs.masked_scatter((kinds_t == IMAGE)[..., None], image_rows)
        states = torch.stack([frame.state for window in windows for frame in window]).to(inputs.dtype)
        inputs = inputs.masked_scatter((kinds_t == STATE)[..., None], self.encode_state(states))
        action_slots = kinds_t == ACTION
        inputs = torch.where(action_slots[..., None], self.action_token.to(inputs.dtype), inputs)
        hidden = self.backend.language_model(self, inputs, input_ids, kinds_t, attention, windows)

        steps = max(len(w) for w in windows)
        out = hidden.new_zeros(len(windows), steps, self.action_steps, hidden.shape[-1])
        for row, window in enumerate(windows):
            slots = hidden[row][action_slots[row]].view(len(window), self.action_steps, -1)
            out[row, steps - len(window) :] = slots
        return out

    def predict(self, windows: Sequence[Sequence[StudentFrame]], instructions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.action_features(windows, instructions)[:, -1]
        return self.decode_actions(self.action_mapper(features))


def make_qwen_processor(image_size: int, mean: Sequence[float], std: Sequence[float], patch_size: int, merge_size: int, temporal_patch_size: int) -> Any:
    """A Qwen2-VL image processor that maps image_size x image_size inputs to a fixed token grid."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    factor = patch_size * merge_size
    side = max(factor, round(image_size / factor) * factor)
    return Qwen2VLImageProcessorPil(
        min_pixels=side * side, max_pixels=side * side, patch_size=patch_size, merge_size=merge_size,
        temporal_patch_size=temporal_patch_size, image_mean=list(mean), image_std=list(std),
    )


# Kept for callers of the previous name.
make_processor = make_qwen_processor


def load_processor(path: Path) -> Any:
    """The Qwen2-VL image processor saved in a directory (Qwen-VL backends)."""
    if not (Path(path) / PROCESSOR_FILE).is_file():
        raise VlaBenchError(f"checkpoint {path}: missing {PROCESSOR_FILE}")
    return Qwen25VLBackend().load_processor(Path(path))


def vlm_classes(name: str) -> tuple[type, type]:
    """The transformers model and config classes of a Qwen-VL backend name; CheckpointError otherwise."""
    import transformers

    backend = vlm_backend(name)
    if not isinstance(backend, QwenVLBackend):
        raise CheckpointError(f"VLM class {name!r} is not a transformers class")
    return getattr(transformers, backend.name), getattr(transformers, backend.config_class)
