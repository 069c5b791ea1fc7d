"""run.json as one typed, frozen `RunDescription`: what a run is (protocol, episode selection, policy,
env) and how it went (status, times, provenance).

It is read and written only here: `read_description` (every reader: resume, merge, report, gate,
index) and `write_description` (the run folder's writer). Reading is strict about what it knows and
lenient about age: a run.json without `schema_version` reads as version 1, a field added since a run
was written takes the value that run actually had (`episode_start`: None, the episodes then started
wherever the previous one left the env's fixtures; a protocol field: its default), and a malformed
file or a missing required field is a one-line `VlaBenchError` naming the file and the field.
Which runs count as the same experiment is `vla_bench.results.identity`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

from vla_bench.errors import VlaBenchError
from vla_bench.results.schema import RUN_FILE
from vla_bench.specs import Protocol

# Bump on an incompatible change of run.json; readers accept every version up to this one.
RUN_SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class CheckpointRef:
    """The checkpoint a policy loaded: its path when run and the sha256 of its bytes (None: no checkpoint)."""

    path: str | None = None
    sha256: str | None = None


@dataclasses.dataclass(frozen=True)
class PolicyDescription:
    name: str
    checkpoint: CheckpointRef = CheckpointRef()
    model: dict[str, Any] | None = None  # the loaded model's facts (policy.describe()); `identity` names a remote model


@dataclasses.dataclass(frozen=True)
class ShardDescription:
    index: int
    count: int
    episodes: int | None = None


@dataclasses.dataclass(frozen=True)
class RunDescription:
    """Everything run.json says, typed. Required: protocol, suites, tasks, trials, max_steps, seed,
    policy, env (every run.json since the first one has them); the rest is optional."""

    protocol: Protocol
    suites: tuple[str, ...]
    tasks: dict[str, tuple[int, ...]]
    trials: int
    max_steps: dict[str, int]  # effective step limit per suite ("suite/base_suite" for robustness variants)
    seed: int
    policy: PolicyDescription
    env: str
    schema_version: int = RUN_SCHEMA_VERSION
    deviations: dict[str, Any] = dataclasses.field(default_factory=dict)
    episodes_planned: int | None = None
    episode_start: str | None = None  # None: a run from before episodes started like a fresh env's first
    rendering: bool | None = None
    image_size: int | None = None
    renderer: str | None = None
    versions: dict[str, Any] | None = None
    git: dict[str, Any] | None = None
    host: dict[str, Any] | None = None
    command: tuple[str, ...] | None = None
    shard: ShardDescription | None = None
    workers: int | None = None
    executor: str | None = None
    reset: str | None = None
    render_steps: str | None = None
    started_at: str | None = None
    status: str | None = None
    finished_at: str | None = None
    wall_s: float | None = None
    worker_peak_rss_mb: float | None = None
    resumed: tuple[dict[str, Any], ...] = ()
    merged_from: tuple[dict[str, Any], ...] | None = None
    merged_at: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # fields of a newer writer, kept on rewrite

    def to_json(self) -> dict[str, Any]:
        """The run.json object (JSON types only)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            if field.name != "extra":
                out[field.name] = _plain(getattr(self, field.name))
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Any, source: str = RUN_FILE) -> RunDescription:
        """Parse a run.json object; `source` names it in errors."""
        if not isinstance(data, dict):
            raise VlaBenchError(f"{source}: expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= RUN_SCHEMA_VERSION:
            raise VlaBenchError(f"{source}: unknown schema_version {version!r} (this vla_bench reads 1 to {RUN_SCHEMA_VERSION})")
        read = _Fields(data, source)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(
            schema_version=version,
            protocol=read.required("protocol", lambda v, where: parse_protocol(v, where)),
            suites=read.required("suites", _list_of(str)),
            tasks=read.required("tasks", _dict_of(_list_of(int))),
            trials=read.required("trials", _int),
            max_steps=read.required("max_steps", _dict_of(_int)),
            seed=read.required("seed", _int),
            policy=read.required("policy", _policy),
            env=read.required("env", _str),
            deviations=read.optional("deviations", _object, {}),
            episodes_planned=read.optional("episodes_planned", _int),
            episode_start=read.optional("episode_start", _str),
            rendering=read.optional("rendering", _bool),
            image_size=read.optional("image_size", _int),
            renderer=read.optional("renderer", _str),
            versions=read.optional("versions", _object),
            git=read.optional("git", _object),
            host=read.optional("host", _object),
            command=read.optional("command", _list_of(str)),
            shard=read.optional("shard", _shard),
            workers=read.optional("workers", _int),
            executor=read.optional("executor", _str),
            reset=read.optional("reset", _str),
            render_steps=read.optional("render_steps", _str),
            started_at=read.optional("started_at", _str),
            status=read.optional("status", _str),
            finished_at=read.optional("finished_at", _str),
            wall_s=read.optional("wall_s", _number),
            worker_peak_rss_mb=read.optional("worker_peak_rss_mb", _number),
            resumed=read.optional("resumed", _list_of(dict), ()),
            merged_from=read.optional("merged_from", _list_of(dict)),
            merged_at=read.optional("merged_at", _str),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def expected_keys(self) -> list[str]:
        """Episode keys of the full (unsharded) selection, in canonical order."""
        return [f"{suite}/{task_id}/{init_idx}" for suite in self.suites for task_id in self.tasks.get(suite, ()) for init_idx in range(self.trials)]


def read_description(run_dir: Path) -> RunDescription:
    """The run.json of `run_dir`; VlaBenchError (one line, naming the file and field) if it is missing or invalid."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise VlaBenchError(f"{path}: missing; {run_dir} is not a run folder")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VlaBenchError(f"{path}: not valid JSON ({exc})") from None
    return RunDescription.from_json(data, str(path))


def write_description(run_dir: Path, description: RunDescription) -> None:
    """Write run.json atomically (a crash leaves the old or the new file, never half of one)."""
    from vla_bench.results.io import write_json_atomic

    write_json_atomic(Path(run_dir) / RUN_FILE, description.to_json())


# ---------------------------------------------------------------- protocol

PROTOCOL_LIST_FIELDS = {"sources": str, "cameras": str, "settle_action": float}


def parse_protocol(value: Any, where: str = "protocol") -> Protocol:
    """A protocol as a run recorded it. Fields added to `Protocol` since then take their defaults: an
    older run did not record them because they did not exist, and it ran their default."""
    if not isinstance(value, dict):
        raise VlaBenchError(f"{where}: expected an object of protocol constants, got {_kind(value)}")
    fields = {f.name: f for f in dataclasses.fields(Protocol)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise VlaBenchError(f"{where}.{unknown[0]}: not a protocol field of this vla_bench (known: {', '.join(fields)})")
    missing = [name for name, f in fields.items() if name not in value and f.default is dataclasses.MISSING]
    if missing:
        raise VlaBenchError(f"{where}.{missing[0]}: missing (a required protocol field)")
    entry = dict(value)
    for name, kind in PROTOCOL_LIST_FIELDS.items():
        items = entry[name]
        if not isinstance(items, list) or not all(isinstance(i, (int, float) if kind is float else kind) for i in items):
            raise VlaBenchError(f"{where}.{name}: expected a list of {kind.__name__}, got {items!r}")
        entry[name] = tuple(kind(i) for i in items)
    try:
        entry["max_steps"] = _dict_of(_int)(entry["max_steps"], f"{where}.max_steps")
        return Protocol(**entry)
    except (TypeError, ValueError) as exc:
        raise VlaBenchError(f"{where}: {exc}") from None


# ---------------------------------------------------------------- field readers

Reader = Callable[[Any, str], Any]


class _Fields:
    def __init__(self, data: dict[str, Any], source: str) -> None:
        self.data = data
        self.source = source

    def required(self, name: str, read: Reader) -> Any:
        if self.data.get(name) is None:
            raise VlaBenchError(f"{self.source}: required field {name!r} is missing")
        return read(self.data[name], f"{self.source}: {name}")

    def optional(self, name: str, read: Reader, default: Any = None) -> Any:
        value = self.data.get(name)
        return default if value is None else read(value, f"{self.source}: {name}")


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if len(repr(value)) < 60 else type(value).__name__


def _typed(name: str, check: Callable[[Any], bool], convert: Callable[[Any], Any] = lambda v: v) -> Reader:
    def read(value: Any, where: str) -> Any:
        if not check(value):
            raise VlaBenchError(f"{where}: expected {name}, got {_kind(value)}")
        return convert(value)

    return read


_str = _typed("a string", lambda v: isinstance(v, str))
_int = _typed("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
_bool = _typed("true or false", lambda v: isinstance(v, bool))
_number = _typed("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), float)
_object = _typed("an object", lambda v: isinstance(v, dict))


def _list_of(kind: type) -> Reader:
    item = {str: _str, int: _int, dict: _object}[kind]

    def read(value: Any, where: str) -> tuple:
        if not isinstance(value, list):
            raise VlaBenchError(f"{where}: expected a list, got {_kind(value)}")
        return tuple(item(v, f"{where}[{i}]") for i, v in enumerate(value))

    return read


def _dict_of(item: Reader) -> Reader:
    def read(value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise VlaBenchError(f"{where}: expected an object, got {_kind(value)}")
        return {k: item(v, f"{where}.{k}") for k, v in value.items()}

    return read


def _policy(value: Any, where: str) -> PolicyDescription:
    _object(value, where)
    name = _str(value.get("name"), f"{where}.name")
    checkpoint = value.get("checkpoint") or {}
    _object(checkpoint, f"{where}.checkpoint")
    path = checkpoint.get("path")
    sha256 = checkpoint.get("sha256")
    ref = CheckpointRef(
        None if path is None else _str(path, f"{where}.checkpoint.path"),
        None if sha256 is None else _str(sha256, f"{where}.checkpoint.sha256"),
    )
    model = value.get("model")
    return PolicyDescription(name, ref, None if model is None else _object(model, f"{where}.model"))


def _shard(value: Any, where: str) -> ShardDescription:
    _object(value, where)
    episodes = value.get("episodes")
    return ShardDescription(
        _int(value.get("index"), f"{where}.index"),
        _int(value.get("count"), f"{where}.count"),
        None if episodes is None else _int(episodes, f"{where}.episodes"),
    )


def _plain(value: Any) -> Any:
    """A field's value in JSON types: dataclasses as objects, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, PolicyDescription) and value.model is None:
            return {"name": value.name, "checkpoint": _plain(value.checkpoint)}
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
