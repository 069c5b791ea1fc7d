"""Episode videos: which episodes get one (`--video none|failures|first-K|all`) and writing the mp4."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from vla_bench.episodes import Episode
from vla_bench.errors import VlaBenchError
from vla_bench.results.schema import STATUS_OK, EpisodeRecord

VIDEO_FPS = 20  # LIBERO's control frequency


class VideoRecorder:
    """Decides which episodes are filmed and writes `<dir>/<suite>_task<t>_init<i>_<outcome>.mp4`.

    "first-K" films the first K episodes of the run's canonical episode order; "failures" must
    film every episode (the outcome is known only at the end) and keeps the failed and errored ones.
    """

    def __init__(self, mode: str, directory: Path, episodes: Sequence[Episode], camera: str) -> None:
        self.mode, self.first = parse_video_mode(mode)
        self.directory = directory
        self.camera = camera
        self._first_keys = {e.key for e in episodes[: self.first]} if self.first else set()

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def wants(self, episode: Episode) -> bool:
        """Whether the executor must keep this episode's frames."""
        if self.mode == "first":
            return episode.key in self._first_keys
        return self.mode in ("all", "failures")

    def keeps(self, record: EpisodeRecord) -> bool:
        return self.mode != "failures" or record.status != STATUS_OK or not record.success

    def save(self, record: EpisodeRecord, frames: Sequence[np.ndarray]) -> Path | None:
        """Write the episode's video if its outcome is selected; never overwrites a file."""
        if not frames or not self.keeps(record):
            return None
        import imageio.v2 as imageio

        outcome = "error" if record.status != STATUS_OK else ("success" if record.success else "failure")
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = f"{record.suite}_task{record.task_id}_init{record.init_idx}_{outcome}"
        path = self.directory / f"{stem}.mp4"
        n = 1
        while path.exists():
            path = self.directory / f"{stem}-{n}.mp4"
            n += 1
        imageio.mimwrite(path, list(frames), fps=VIDEO_FPS, macro_block_size=1)
        return path


def parse_video_mode(text: str) -> tuple[str, int]:
    """"none" | "failures" | "all" | "first-K" -> (mode, K)."""
    if text in ("none", "failures", "all"):
        return text, 0
    match = re.fullmatch(r"first-(\d+)", text)
    if match and int(match.group(1)) > 0:
        return "first", int(match.group(1))
    raise VlaBenchError(f"--video {text!r}: expected none, failures, all or first-K (K >= 1, e.g. first-5)")
