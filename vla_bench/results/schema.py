"""The results schema: one JSON line per episode in `episodes.jsonl` (run.json is a RunDescription,
`results/description.py`).

Readers (summary, report, gate) depend on these fields, never on log text. Bump SCHEMA_VERSION
on any incompatible change.
"""

from __future__ import annotations

import dataclasses
from typing import Any

SCHEMA_VERSION = 1

RUN_FILE = "run.json"
EPISODES_FILE = "episodes.jsonl"
SUMMARY_MD = "summary.md"
SUMMARY_CSV = "summary.csv"
RETRIED_FILE = "retried-errors.jsonl"  # records of error episodes re-run by --resume --retry-errors

STATUS_OK = "ok"
STATUS_ERROR = "error"


@dataclasses.dataclass(frozen=True)
class EpisodeRecord:
    """The outcome of one episode. `success` is meaningful only when status is "ok"."""

    suite: str
    task_id: int
    task: str
    init_idx: int
    seed: int
    success: bool
    steps: int
    wall_s: float
    status: str
    error: str | None = None
    schema_version: int = SCHEMA_VERSION
    attempts: int = 1  # tries it took (a simulator crash retries the episode on a fresh worker)
    worker_peak_rss_mb: float | None = None  # peak RSS of the env worker that ran it (pool executor)
    # robustness suites (libero_plus, libero_pro_*): the variant's name, perturbation category, level
    # (None: unrated or a suite without levels) and the LIBERO suite of its unperturbed task
    variant: str | None = None
    category: str | None = None
    level: int | None = None
    base_suite: str | None = None

    @property
    def key(self) -> str:
        return f"{self.suite}/{self.task_id}/{self.init_idx}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpisodeRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        optional = {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING} - {"schema_version"}
        missing = names - set(data) - optional
        if missing:
            raise ValueError(f"missing fields {sorted(missing)}")
        for name, expected in _FIELD_TYPES.items():
            value = data.get(name)
            if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
                raise ValueError(f"field {name!r} has {type(value).__name__} value {value!r}")
        return cls(**{k: v for k, v in data.items() if k in names})


# JSON types of the record fields, checked when reading (a hand-edited or corrupted line fails there,
# naming its line, instead of deep inside a report).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "suite": (str,),
    "task_id": (int,),
    "task": (str,),
    "init_idx": (int,),
    "seed": (int,),
    "success": (bool,),
    "steps": (int,),
    "wall_s": (int, float),
    "status": (str,),
    "error": (str, type(None)),
    "variant": (str, type(None)),
    "category": (str, type(None)),
    "level": (int, type(None)),
    "base_suite": (str, type(None)),
}
