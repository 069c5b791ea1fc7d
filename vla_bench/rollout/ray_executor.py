"""The Ray executor: env workers as Ray actors across a cluster, records to the driver.

Each env worker is a Ray actor (`EnvActor`) that owns one env, built lazily inside the actor's
process, and declares the CPU and memory it needs so that Ray's scheduler places it on a node with
room for it. This process, Ray's driver, keeps every episode's `EpisodeDriver` (the state machine
every executor drives, `vla_bench/rollout/driver.py`), waits on the actors' replies in completion
order (`ray.wait` over every call in flight) and yields each finished record to the run, which writes
it: one writer, the run's, with the pool's fsync, resume, shard and identity semantics.

Where the policy runs: without a GPU for it, in the driver (its own copy, one batched `infer` for
every env waiting for an action, as the pool's main process does), so an env step costs one actor
call and one reply. With a GPU (or `RaySettings.policy_actor`), on one policy actor (`PolicyActor`)
given that GPU: observations go from the env actors to it as object references (Ray moves them
between nodes directly) and the driver gets each observation without its images.

Episode semantics are the driver's, so a deterministic policy gives the same records on every executor. An env actor that dies (its
process or its node is lost, or it is killed), hangs past the timeout or raises a simulator error
loses only its current episode, which is retried from scratch on a fresh actor (`attempts` counts
the tries) and recorded as an error only after `retries` retries. Losing the policy actor loses the
episodes in flight (their policy state lived there); they are retried the same way.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import traceback
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from vla_bench.envs import EnvFactory
from vla_bench.envs.base import Env, EnvSpec, Observation
from vla_bench.episodes import Episode
from vla_bench.errors import PolicyOutputError, VlaBenchError
from vla_bench.policies.base import Policy, check_output
from vla_bench.results.schema import EpisodeRecord
from vla_bench.rollout.driver import STARTING, WAITING, EpisodeDriver, Lost, act_batch
from vla_bench.envs import simulator_errors
from vla_bench.rollout.episode import EnvOptions
from vla_bench.rollout.executor import EXECUTORS, EnvExecutor, ExecutorSetup
from vla_bench.rollout.pool import WorkerError
from vla_bench.rollout.resources import per_worker_gb
from vla_bench.rollout.video import VideoRecorder
from vla_bench.rollout.worker import OTHER, SIMULATOR, WorkerFailure, peak_rss_mb

GB = 1e9
PolicyFactory = Callable[[], Policy]


def import_ray() -> Any:
    """The `ray` module, or a one-line error saying how to install it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
    try:
        import ray
    except ImportError:
        raise VlaBenchError(
            "--executor ray needs Ray: pip install -c constraints.txt -e '.[ray]' (the pinned version)"
        ) from None
    return ray


@dataclasses.dataclass(frozen=True)
class RaySettings:
    """Where the cluster is and how many env actors to run on it."""

    address: str = "auto"  # "auto": the cluster `ray start` runs on this machine (or $RAY_ADDRESS); HOST:PORT
    workers: int | None = None  # env actors; None: the cluster's CPUs, capped by its memory
    retries: int = 2  # extra attempts for an episode whose actor died, hung or hit a simulator error
    timeout_s: float = 120.0  # longest wait for one step's reply
    start_timeout_s: float = 600.0  # longest wait for an episode start (actor placement, env build, reset)
    env_gb: float | None = None  # memory reserved per env actor; None: the env kind's estimate
    policy_gpu: bool | None = None  # give the policy actor a GPU; None: when the cluster has one
    policy_actor: bool | None = None  # infer on a policy actor; None: only when it gets a GPU (else in the driver)

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError("ray workers must be at least 1")
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if self.timeout_s <= 0 or self.start_timeout_s <= 0:
            raise ValueError("timeouts must be positive")


# -- the actors (plain classes; `ray.remote` wraps them when the executor starts) ---------------------


class EnvActor:
    """One env worker: builds the task's env inside its own process on first use, then starts and
    steps episodes. A reply is one object `(meta, observation)`: meta is `(success, language,
    peak_rss_mb)` or a `WorkerFailure` (then the observation is None). With `split` (a policy actor
    reads the observations) it is two objects: `(meta, observation without images)` for the driver
    and the whole observation for the policy actor, so that the images go only where they are read."""

    def __init__(self, env_factory: EnvFactory, split: bool = False) -> None:
        self.env_factory = env_factory
        self.split = split
        self.env: Env | None = None

    def _reply(self, meta: Any, obs: Observation | None) -> Any:
        if not self.split:
            return meta, obs
        light = dataclasses.replace(obs, images={}) if obs is not None else None
        return (meta, light), obs

    def start(self, spec: EnvSpec, init_idx: int, seed: int, render: bool) -> tuple[Any, Observation | None]:
        try:
            if self.env is None or self.env.spec != spec:
                if self.env is not None:
                    env, self.env = self.env, None
                    env.close()
                self.env = self.env_factory(spec)
            obs = self.env.start(init_idx, seed, render=render)
            return self._reply((False, self.env.language, peak_rss_mb()), obs)
        except Exception as exc:  # carried back: the driver retries (simulator) or stops the run
            return self._reply(_failure(exc), None)

    def step(self, action: np.ndarray, render: bool) -> tuple[Any, Observation | None]:
        try:
            assert self.env is not None, "step before start"
            obs, success = self.env.step(action, render=render)
            return self._reply((success, self.env.language, peak_rss_mb()), obs)
        except Exception as exc:
            return self._reply(_failure(exc), None)

    def where(self) -> tuple[str, int]:
        """(Ray node id, process id) of this actor."""
        import ray

        return ray.get_runtime_context().get_node_id(), os.getpid()

    def close(self) -> None:
        if self.env is not None:
            env, self.env = self.env, None
            env.close()


def _failure(exc: BaseException) -> WorkerFailure:
    kind = SIMULATOR if isinstance(exc, simulator_errors()) else OTHER
    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return WorkerFailure(kind, message, traceback.format_exc())


class PolicyActor:
    """Holds the policy; one `infer` call answers every env that waits for an action."""

    def __init__(self, policy_factory: PolicyFactory) -> None:
        self.policy = policy_factory()

    def start_episode(self, episode: Episode) -> None:
        self.policy.start_episode(episode)

    def end_episode(self, episode: Episode) -> None:
        self.policy.end_episode(episode)

    def infer(self, tags: list[tuple[str, int]], *observations: Observation) -> tuple[np.ndarray, list[bool]]:
        """Actions for the observations (Ray resolves the references), tagged with episode and step, and
        per row whether the policy reads the next observation (images)."""
        for obs, (episode, step) in zip(observations, tags):
            obs.episode, obs.step = episode, step
        return check_output(self.policy.infer(list(observations)), len(observations), self.policy.uses_images)

    def close(self) -> None:
        self.policy.close()


class _Ship:
    """A policy factory that returns a policy object shipped to the actor (pickled)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def __call__(self) -> Policy:
        return self.policy


# -- the driver ---------------------------------------------------------------------------------


@dataclasses.dataclass
class _Slot:
    """One env actor and the episode it runs (its `EpisodeDriver`)."""

    index: int
    actor: Any = None
    driver: EpisodeDriver | None = None
    deadline: float = 0.0  # when the actor's reply to the last call is overdue
    ref: Any = None  # the pending env call's meta reference (None while the episode waits for its action)
    obs_ref: Any = None  # the latest observation as an object reference (lives on the env's node)
    failed_before: list[str] = dataclasses.field(default_factory=list)  # earlier attempts' reasons


class RayExecutor(EnvExecutor):
    """Runs an episode list on env actors of a Ray cluster (see module docstring)."""

    def __init__(
        self,
        settings: RaySettings,
        env_factory: EnvFactory | str = "libero",
        options: EnvOptions = EnvOptions(),
        video: VideoRecorder | None = None,
        policy_factory: PolicyFactory | None = None,
        env_kind: str | None = None,
    ) -> None:
        super().__init__(env_factory, options, video)
        self.settings = settings
        self.env_kind = self.env_kind or env_kind  # a factory's kind, for its memory estimate
        self.policy_factory = policy_factory

    @property
    def env_gb(self) -> float:
        if self.settings.env_gb is not None:
            return self.settings.env_gb
        return per_worker_gb(self.env_kind or "libero")

    def _run(self, episodes: Sequence[Episode]) -> Iterator[EpisodeRecord]:
        """Yield one record per episode, in completion order; closing the generator stops the actors."""
        ray = self._ray = import_ray()
        owns_connection = not ray.is_initialized()
        if owns_connection:
            connect(ray, self.settings.address)
        slots: list[_Slot] = []
        self._policy_actor = None
        self._infer: tuple[Any, list[tuple[_Slot, EpisodeDriver]]] | None = None
        clean = False
        try:
            self._env_actor_class = ray.remote(num_cpus=1, memory=int(self.env_gb * GB), max_restarts=0)(EnvActor)
            resources = self._policy_resources()
            self._split = self.settings.policy_actor if self.settings.policy_actor is not None else resources["num_gpus"] > 0
            self._policy_actor_class = ray.remote(max_restarts=0, **resources)(PolicyActor)
            workers = min(self.workers_for_cluster(), len(episodes))
            slots = self._slots = [_Slot(i) for i in range(workers)]
            while self._pending or any(s.driver for s in slots):
                for slot in slots:
                    if slot.driver is None and self._pending:
                        self._assign(slot)
                if self._infer is None:
                    waiting = [s for s in slots if s.driver is not None and s.driver.phase == WAITING and s.ref is None]
                    if waiting:
                        self._request_actions(waiting)
                self._collect(slots)
                while self._done:
                    yield self._done.popleft()
            clean = True
        finally:
            for slot in slots:  # interrupted or stopped by an error: the policy's episodes end here
                if slot.driver is not None:
                    slot.driver, driver = None, slot.driver
                    driver.abandon()
            self._shutdown(slots, clean)
            if owns_connection:
                ray.shutdown()

    # -- resources --------------------------------------------------------------------------------

    def _policy_resources(self) -> dict[str, Any]:
        gpus = self._ray.cluster_resources().get("GPU", 0)
        use_gpu = gpus >= 1 if self.settings.policy_gpu is None else self.settings.policy_gpu
        # The policy actor takes no CPU slot: every CPU goes to an env actor, as the pool's main
        # process takes no worker slot.
        return {"num_cpus": 0, "num_gpus": 1 if use_gpu else 0}

    def workers_for_cluster(self) -> int:
        """`settings.workers`, or as many env actors as the cluster's CPUs and memory hold now."""
        total = self._ray.cluster_resources()
        cpus = int(total.get("CPU", 0))
        holds = min(cpus, int(total.get("memory", 0) // (self.env_gb * GB)))
        if self.settings.workers is not None:
            if self.settings.workers > holds:
                print(
                    f"vla-bench: warning: --workers {self.settings.workers} is more env actors than the Ray cluster "
                    f"holds now ({holds}: 1 CPU and {self.env_gb:g} GB each); the others wait for resources",
                    file=sys.stderr,
                )
            return self.settings.workers
        if holds < 1:
            raise VlaBenchError(
                f"the Ray cluster has {cpus} CPUs and {total.get('memory', 0) / GB:.1f} GB of memory: "
                f"no room for one env actor (1 CPU, {self.env_gb:g} GB)"
            )
        return holds

    # -- episodes -----------------------------------------------------------------------------------

    def _ensure_policy_actor(self) -> Any:
        if self._policy_actor is None:
            factory = self.policy_factory or _Ship(self._policy)
            self._policy_actor = self._policy_actor_class.options(name=None).remote(factory)
        return self._policy_actor

    def _assign(self, slot: _Slot) -> None:
        episode, attempt, failed_before = self._pending.popleft()
        if slot.actor is None:
            slot.actor = self._env_actor_class.remote(self.env_factory, self._split)
        driver = self._driver(episode, attempt)
        slot.driver, slot.failed_before = driver, failed_before
        slot.deadline = time.monotonic() + self.settings.start_timeout_s
        render = driver.start()  # the driver's copy of the policy says which steps it reads
        if self._split:
            self._ensure_policy_actor().start_episode.remote(episode)  # runs before this episode's first infer
        spec = self.options.spec(self._protocol, episode)
        self._call(slot, slot.actor.start, spec, episode.init_idx, episode.seed, render)

    def _call(self, slot: _Slot, method: Any, *args: Any) -> None:
        """Call an env actor's start or step: one reply object, or two when a policy actor reads the observations."""
        if self._split:
            slot.ref, slot.obs_ref = method.options(num_returns=2).remote(*args)
        else:
            slot.ref = method.remote(*args)

    def _step(self, slot: _Slot, action: np.ndarray) -> None:
        assert slot.driver is not None
        slot.deadline = time.monotonic() + self.settings.timeout_s
        self._call(slot, slot.actor.step, action, slot.driver.render_next)

    def _request_actions(self, waiting: list[_Slot]) -> None:
        """One batched inference for every env waiting for an action: in this process (the driver's
        copy of the policy, as the pool does), or on the policy actor (observations stay references)."""
        if not self._split:
            for slot, action in zip(waiting, act_batch(self._policy, [s.driver for s in waiting])):
                if isinstance(action, Lost):  # the policy side lost it; the env is sound
                    self._lost(slot, action.reason, keep_actor=True)
                elif action is None:  # unusable output: the driver recorded the error
                    self._finish(slot)
                else:
                    self._step(slot, action)
            return
        tags = [(s.driver.obs.episode, s.driver.obs.step) for s in waiting]  # the driver tagged its copy
        refs = [s.obs_ref for s in waiting]
        self._infer = (self._ensure_policy_actor().infer.remote(tags, *refs), [(s, s.driver) for s in waiting])

    def _collect(self, slots: list[_Slot]) -> None:
        """Wait for the next replies (or deadlines) and process them in completion order."""
        ray = self._ray
        busy = {s.ref: s for s in slots if s.driver is not None and s.ref is not None}
        refs = list(busy)
        if self._infer is not None:
            refs.append(self._infer[0])
        if not refs:
            return
        timeout = max(min((s.deadline for s in busy.values()), default=float("inf")) - time.monotonic(), 0.0)
        ready, _ = ray.wait(refs, num_returns=1, timeout=None if timeout == float("inf") else timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            if self._infer is not None and ref == self._infer[0]:
                self._actions_ready()
            else:
                self._env_reply(busy[ref])
        now = time.monotonic()
        for ref, slot in busy.items():
            if slot.driver is not None and slot.ref is ref and ref not in ready and now >= slot.deadline:
                phase = slot.driver.phase
                limit = self.settings.start_timeout_s if phase == STARTING else self.settings.timeout_s
                self._lost(slot, f"env actor {slot.index}: no reply while {phase} within {limit:g} s (hung)")

    def _env_reply(self, slot: _Slot) -> None:
        ray, driver = self._ray, slot.driver
        assert driver is not None
        try:
            meta, obs = ray.get(slot.ref)
            if self._split and driver.video is not None and not isinstance(meta, WorkerFailure):
                obs = ray.get(slot.obs_ref)  # the driver keeps this episode's video frames
        except ray.exceptions.RayTaskError as exc:  # the actor method itself broke (not the env)
            raise WorkerError(f"env actor {slot.index} raised an unexpected error:\n{exc}") from None
        except ray.exceptions.RayError as exc:  # the actor's process or node is gone
            self._lost(slot, f"env actor {slot.index} died ({type(exc).__name__}: {_first_line(exc)})")
            return
        slot.ref = None
        if isinstance(meta, WorkerFailure):
            if meta.kind == OTHER:
                raise WorkerError(f"env actor {slot.index} raised an unexpected error:\n{meta.traceback}")
            self._lost(slot, f"simulator: {meta.message}")
            return
        success, language, peak_rss_mb = meta
        self._languages[(driver.episode.suite, driver.episode.task_id)] = language
        if driver.observe(obs, success, language, peak_rss_mb):
            self._finish(slot)

    def _actions_ready(self) -> None:
        ray = self._ray
        ref, batch = self._infer
        self._infer = None
        try:
            actions, reads_next = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else None
            if isinstance(cause, PolicyOutputError):  # unusable output for the whole batch
                for slot, driver in batch:
                    if slot.driver is driver:
                        driver.fail(f"policy output: {cause}")
                        self._finish(slot)
                return
            if cause is not None and not isinstance(cause, ray.exceptions.RayError):
                raise cause from exc  # a policy bug: the run stops with the policy's own exception
            self._policy_lost(f"policy inference failed ({_first_line(exc)})")
            return
        except ray.exceptions.RayError as exc:  # the policy actor's process or node is gone
            self._policy_lost(f"policy actor died ({type(exc).__name__}: {_first_line(exc)})")
            return
        for (slot, driver), action, reads in zip(batch, actions, reads_next):
            if slot.driver is not driver:  # lost meanwhile (and perhaps given another episode)
                continue
            action = driver.act(action, reads)
            if action is None:  # unusable (non-finite): the driver recorded the error
                self._finish(slot)
                continue
            self._step(slot, action)

    # -- endings ---------------------------------------------------------------------------------

    def _policy_lost(self, reason: str) -> None:
        """The policy actor (and the per-episode state it held) is gone: every episode in flight
        starts over on a fresh policy actor."""
        if self._policy_actor is not None:
            self._ray.kill(self._policy_actor, no_restart=True)
            self._policy_actor = None
        for slot in self._slots:
            if slot.driver is not None:
                self._lost(slot, reason, keep_actor=True)

    def _lost(self, slot: _Slot, reason: str, keep_actor: bool = False) -> None:
        """The episode's attempt is lost: retry it on a fresh actor or record the error."""
        driver = slot.driver
        assert driver is not None
        if not keep_actor and slot.actor is not None:
            self._ray.kill(slot.actor, no_restart=True)
            slot.actor = None
        slot.ref = slot.obs_ref = None
        summary = self._retry(driver, [*slot.failed_before, reason], self.settings.retries)
        if summary is None:
            slot.driver = None
            driver.abandon()  # the retry starts the episode afresh
            return
        driver.fail(summary)
        self._finish(slot)

    def _finish(self, slot: _Slot) -> None:
        """The episode is over (its driver holds the record): hand the record to the run."""
        assert slot.driver is not None and slot.driver.record is not None
        if self._policy_actor is not None:
            self._policy_actor.end_episode.remote(slot.driver.episode)  # the actor's copy ends it too
        self._done.append(slot.driver.record)
        slot.driver = None
        slot.ref = slot.obs_ref = None

    def _shutdown(self, slots: list[_Slot], clean: bool) -> None:
        """Close the envs politely after a clean run; kill every actor either way."""
        ray = self._ray
        actors = [s.actor for s in slots if s.actor is not None]
        if clean and actors:
            try:
                ray.get([a.close.remote() for a in actors], timeout=30)
            except Exception:  # closing is best effort; the kill below frees the resources
                pass
        for actor in [*actors, self._policy_actor]:
            if actor is not None:
                ray.kill(actor, no_restart=True)
        for slot in slots:
            slot.actor = None
        self._policy_actor = None


def connect(ray: Any, address: str) -> None:
    """Connect this process to the cluster at `address` as its driver, or fail in one line."""
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "on this machine (start one: docs/engine.md)" if address == "auto" else f"at {address}"
        raise VlaBenchError(f"--executor ray: no Ray cluster {where}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@EXECUTORS.register("ray")
def _make_ray(setup: ExecutorSetup) -> RayExecutor:
    """Env actors on a Ray cluster (--address), one policy actor; --workers defaults to what the cluster holds."""
    address = getattr(setup.config, "address", None) or "auto"
    settings = RaySettings(
        address=address, workers=setup.workers, retries=setup.retries, timeout_s=setup.timeout_s,
        start_timeout_s=setup.start_timeout_s,
    )
    kind = getattr(setup.config, "env", None)
    return RayExecutor(settings, setup.env_factory, setup.options, setup.video, env_kind=kind)
