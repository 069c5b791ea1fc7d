"""Pieces shared by teacher and student: the proprioceptive state encoder and the action decoder.

Parameter names follow the released Seer checkpoints (`arm_state_encoder`, `action_decoder`, ...),
so both models can sit at the top level of a state dict under those names.
"""

from __future__ import annotations

import torch
from torch import nn

ARM_DIM = 6
GRIPPER_STATE_DIM = 2


class StateEncoderMixin:
    """Adds arm Linear(6->H), gripper Linear(2->H) and projector Linear(2H->H) to an nn.Module."""

    def _build_state_encoder(self, hidden: int) -> None:
        self.arm_state_encoder = nn.Linear(ARM_DIM, hidden)
        self.gripper_state_encoder = nn.Linear(GRIPPER_STATE_DIM, hidden)
        self.state_projector = nn.Linear(2 * hidden, hidden)

    def encode_state(self, state: torch.Tensor) -> torch.Tensor:
        """(..., 8) state [eef pos 3, rotation 3, gripper qpos 2] -> (..., H) state token."""
        arm = self.arm_state_encoder(state[..., :ARM_DIM])
        gripper = self.gripper_state_encoder(state[..., ARM_DIM : ARM_DIM + GRIPPER_STATE_DIM])
        return self.state_projector(torch.cat([arm, gripper], dim=-1))


class ActionDecoderMixin:
    """MLP d -> d/2 -> d/2 (ReLU), arm head Linear -> 6 + tanh, gripper head Linear -> 1 + sigmoid."""

    def _build_action_decoder(self, width: int) -> None:
        half = width // 2
        self.action_decoder = nn.Sequential(nn.Linear(width, half), nn.ReLU(), nn.Linear(half, half), nn.ReLU())
        self.arm_action_decoder = nn.Sequential(nn.Linear(half, ARM_DIM), nn.Tanh())
        self.gripper_action_decoder = nn.Sequential(nn.Linear(half, 1), nn.Sigmoid())

    def decode_actions(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., d) action features -> arm (..., 6) in [-1, 1] and gripper probability (..., 1)."""
        hidden = self.action_decoder(features)
        return self.arm_action_decoder(hidden), self.gripper_action_decoder(hidden)
