"""What an executor needs to know about envs: how each episode's env is built (`EnvOptions`), which
steps are rendered (`Rendering`). Which exceptions are simulator errors is the env kind's business
(`vla_bench.envs.simulator_errors`). The episode itself is driven by `vla_bench.rollout.driver`."""

from __future__ import annotations

import dataclasses

from vla_bench.envs.base import EnvSpec
from vla_bench.episodes import Episode
from vla_bench.specs import Protocol


RENDER_MODES = ("lazy", "all", "none")


@dataclasses.dataclass(frozen=True)
class Rendering:
    """Which steps' camera images are rendered.

    "lazy": the steps the policy reads (the first step when it `uses_images`, then what its `infer`
    said in `PolicyOutput.reads_next`) and every step of an episode whose video is recorded; "all":
    every step; "none": never. Rendering never changes an outcome.
    """

    mode: str = "lazy"

    def __post_init__(self) -> None:
        if self.mode not in RENDER_MODES:
            raise ValueError(f"rendering mode {self.mode!r}: expected one of {RENDER_MODES}")

    def needed(self, policy_reads: bool, video: bool = False) -> bool:
        """Whether an observation needs images, given whether the policy reads it and whether the
        episode is filmed."""
        if self.mode == "none":
            return False
        return self.mode == "all" or video or policy_reads


@dataclasses.dataclass(frozen=True)
class EnvOptions:
    """How an executor builds each task's env and which steps it renders (both executors take one)."""

    render: bool = True  # build the envs with cameras at all
    image_size: int | None = None  # None: the protocol's model input size
    rendering: Rendering = Rendering("lazy")
    fast_reset: bool = False  # soft reset between episodes of a task (bit-identical, see LiberoEnv)
    privileged: bool = False  # simulator state for scripted policies

    @property
    def steps_rendered(self) -> Rendering:
        return self.rendering if self.render else Rendering("none")

    def spec(self, protocol: Protocol, episode: Episode) -> EnvSpec:
        return EnvSpec.from_protocol(
            protocol, episode.suite, episode.task_id, render=self.render, image_size=self.image_size,
            fast_reset=self.fast_reset, privileged=self.privileged,
        )
