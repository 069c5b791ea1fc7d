"""The real LIBERO env in MuJoCo, driven exactly like the reference evaluation loop.

Episode start = seed -> reset -> set_init_state(init_states[i]) -> settle no-op steps; then one
`step` per policy action, success = the env's `done` (LIBERO's goal predicates).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import mmap
import os
import sys
from pathlib import Path

import numpy as np

from vla_bench.envs.base import EnvSpec, Observation, check_action
from vla_bench.envs.libero_setup import ensure_ready, libero_root
from vla_bench.envs.libero_tasks import load_init_states, suite_tasks
from vla_bench.envs.obs import process_raw
from vla_bench.errors import VlaBenchError


def load_task(suite: str, task_id: int):
    """(task, init_states, bddl path) of one LIBERO task, or of one variant of a robustness suite.
    LIBERO's tasks are read without its benchmark module, which imports torch (~190 MB per worker
    for one `torch.load`; see envs/libero_tasks.py)."""
    from vla_bench.specs import suites

    if suites().get(suite).robust:
        from vla_bench.envs.robust_setup import load_variant

        return load_variant(suite, task_id)
    ensure_ready()
    # LIBERO, robosuite and gym print banners and task orders on import: keep them off the console.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from libero.libero import get_libero_path
        from libero.libero.envs import env_wrapper  # noqa: F401

    tasks = suite_tasks(libero_root(), suite)
    if not 0 <= task_id < len(tasks):
        raise VlaBenchError(f"task id {task_id} out of range for {suite} (0..{len(tasks) - 1})")
    task = tasks[task_id]
    init_states = load_init_states(Path(get_libero_path("init_states")) / task.problem_folder / task.init_states_file)
    bddl = os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
    return task, init_states, bddl


def control_env_class(suite: str):
    """LIBERO's ControlEnv, or the robustness package's own for its suites."""
    from vla_bench.specs import suites

    if suites().get(suite).robust:
        from vla_bench.envs.robust_setup import control_env_class as robust_class

        return robust_class(suite)
    from libero.libero.envs.env_wrapper import ControlEnv

    return ControlEnv


def make_raw_env(spec: EnvSpec, bddl: str):
    """The LIBERO ControlEnv for a spec: offscreen rendering of the protocol's cameras, or none."""
    env = _make_raw_env(spec, bddl)
    if not spec.cameras and getattr(env, "noise", 0):
        env.noise = 0  # LIBERO-Plus noise variants blur the agentview image; without cameras there is none
    return env


def _make_raw_env(spec: EnvSpec, bddl: str):
    ControlEnv = control_env_class(spec.suite)  # noqa: N806

    size = spec.render_size
    if spec.cameras:
        return ControlEnv(
            bddl_file_name=bddl,
            camera_names=list(spec.cameras),
            camera_heights=size,
            camera_widths=size,
            has_renderer=False,
            has_offscreen_renderer=True,
            use_camera_obs=True,
        )
    return ControlEnv(bddl_file_name=bddl, has_renderer=False, has_offscreen_renderer=False, use_camera_obs=False)


ASSET_CACHE_VARIABLE = "VLA_BENCH_ASSET_CACHE"
ASSET_CACHE_MODES = ("auto", "keep", "off")
MUJOCO_CACHE_CAPACITY = 512 * 1024 * 1024  # mujoco 3.3's default


def asset_cache_mode() -> str:
    """$VLA_BENCH_ASSET_CACHE: auto (default), keep or off; anything else is an error."""
    mode = os.environ.get(ASSET_CACHE_VARIABLE, "auto").strip().lower() or "auto"
    if mode not in ASSET_CACHE_MODES:
        raise VlaBenchError(f"${ASSET_CACHE_VARIABLE}={mode!r}: expected one of {', '.join(ASSET_CACHE_MODES)}")
    return mode


def keeps_asset_cache(spec: EnvSpec) -> bool:
    """Whether this env's process keeps MuJoCo's asset cache: `keep`, `off`, or with `auto` only when
    the env renders nothing (an unrendered eval is bound by CPU, a rendered worker by memory)."""
    mode = asset_cache_mode()
    return mode == "keep" or (mode == "auto" and not spec.cameras)


def set_asset_cache(keep: bool) -> None:
    """Keep MuJoCo's asset cache (its default, 512 MB capacity) or keep none in this process.

    MuJoCo 3.3 keeps the decoded textures and meshes of every compiled model in a process-wide cache
    (~260 MB for a LIBERO scene) to compile the same files again faster. Without it every scene build
    decodes the PNG textures again: ~2 CPU-seconds more per build (bench/results/eval-cpu-*), the
    regression of `make eval-libero` in issue #12. With it that memory is held for good and on top of
    every later build's peak. Capacity 0 ("disabled") crashes mujoco 3.3.7, so "none" is one byte."""
    import mujoco

    cache = mujoco.mj_getCache()
    if keep:
        if mujoco.mj_getCacheCapacity(cache) < MUJOCO_CACHE_CAPACITY:
            mujoco.mj_setCacheCapacity(cache, MUJOCO_CACHE_CAPACITY)
    else:
        mujoco.mj_clearCache(cache)
        mujoco.mj_setCacheCapacity(cache, 1)


def trim_heap() -> None:
    """Return the free pages glibc keeps in its heap after a scene build's temporary allocations."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def free_last_xml() -> None:
    """Free the parsed scene MuJoCo keeps after every XML load (~450 MB for a LIBERO scene).

    `mj_loadXML` (behind `MjModel.from_xml_string`) keeps the last parsed model, meshes and decoded
    textures included, in a process-wide global so that `mj_saveLastXML` can write it back out;
    only the next load replaces it. Measured with mujoco 3.3.7 alone in a process: compiling a
    LIBERO scene and freeing the model left 495 MB resident, 60 MB after `mj_freeLastXML`. Nothing
    in an evaluation calls `mj_saveLastXML` (robosuite's `sim.model.get_xml()`; the MJCF object's
    `env.model.get_xml()` is unaffected); after this it has no model to write. The Python bindings do
    not expose the function, so it is called in the loaded libmujoco."""
    import glob

    import mujoco

    libraries = glob.glob(os.path.join(os.path.dirname(mujoco.__file__), "libmujoco.so*"))
    if not libraries:
        return  # another packaging of mujoco: keep the last XML
    ctypes.CDLL(libraries[0]).mj_freeLastXML()


@contextlib.contextmanager
def build_memory_released(render_size: int):
    """While active, robosuite's scene builds give memory back at the two points where it stops being
    needed, not only after the whole build (LiberoEnv._release_build_memory), which lowers the build's
    peak RSS:

    - right after the model is compiled, MuJoCo's last parsed XML (free_last_xml) and the heap pages
      the parse left free (trim_heap), before the GL context uploads the textures: the parsed scene
      and the GL copies then never exist at once;
    - right after the GL context has uploaded the textures (robosuite's
      `_set_mujoco_context_and_buffers`, which makes the MjrContext), the model's copy of the texture
      pixels (release_texture_pixels, with its framebuffer-size check). The rest of robosuite's reset
      (observables, the first renders, Mesa compiling its shaders) then grows RSS from the lower level.

    Measured with bench/env_memory.py --trace (libero_spatial task 0, both cameras at 256 px): the
    build's peak came ~55 MB after the GL context, before the end-of-build release."""
    from robosuite.utils.binding_utils import MjRenderContext, MjSim

    original_compile = MjSim.__dict__["from_xml_string"]
    original_context = MjRenderContext.__dict__["_set_mujoco_context_and_buffers"]

    def compile_then_free(cls, xml):
        sim = original_compile.__func__(cls, xml)
        free_last_xml()
        trim_heap()
        return sim

    def context_then_release(context):
        original_context(context)
        release_texture_pixels(context.sim, render_size)
        trim_heap()

    MjSim.from_xml_string = classmethod(compile_then_free)
    MjRenderContext._set_mujoco_context_and_buffers = context_then_release
    try:
        yield
    finally:
        MjSim.from_xml_string = original_compile
        MjRenderContext._set_mujoco_context_and_buffers = original_context


MADV_DONTNEED = 4  # Linux


def release_texture_pixels(sim, render_size: int) -> int:
    """Give back the model's copy of its texture pixels (~190 MB for a LIBERO scene); returns bytes.

    Nothing reads `model.tex_data` after the scene build: physics never does, and the renderer draws
    from the copies it uploaded to the GL context when the context was created (llvmpipe keeps them
    in its own memory); a hard reset compiles a new model and a new context. Only re-creating the GL
    context from this model would read them again, which robosuite does when asked for images larger
    than the context's framebuffer: then nothing is released. The pages are returned to the kernel
    with madvise(MADV_DONTNEED) and would read as zeros. Linux only; elsewhere a no-op."""
    context = sim._render_context_offscreen
    if context is not None and (render_size > context.con.offWidth or render_size > context.con.offHeight):
        return 0
    pixels = sim.model._model.tex_data
    if pixels.nbytes == 0 or not sys.platform.startswith("linux"):
        return 0
    page = mmap.PAGESIZE
    start = -(-pixels.ctypes.data // page) * page  # whole pages inside the array only
    end = (pixels.ctypes.data + pixels.nbytes) // page * page
    if end <= start:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_DONTNEED) != 0:
        return 0
    return end - start


BUILT = object()  # LiberoEnv._scene_seed of a scene that only the constructor has built


class CameraGate:
    """A robosuite camera sensor that renders only while `open`; otherwise it returns a blank image.

    robosuite samples each observable at fixed sub-steps of a control step (its timer keeps running
    whatever the sensor does), so swapping the sensor function, unlike disabling the observable
    (which resets that timer), leaves the sub-step at which an image is taken unchanged: frames
    rendered through an opened gate are bit-identical to those of an env that renders every step.
    """

    def __init__(self, real_sensor, height: int, width: int) -> None:
        self.real = real_sensor
        self.__modality__ = real_sensor.__modality__  # robosuite's @sensor marker
        self.blank = np.zeros((height, width, 3), dtype=np.uint8)
        self.open = False

    def __call__(self, obs_cache):
        return self.real(obs_cache) if self.open else self.blank


class LiberoEnv:
    """One LIBERO task's env with the protocol's observation processing."""

    def __init__(self, spec: EnvSpec) -> None:
        self.spec = spec
        task, self._init_states, bddl = load_task(spec.suite, spec.task_id)
        self.language: str = task.language
        self.n_init_states = len(self._init_states)
        set_asset_cache(keeps_asset_cache(spec))
        with build_memory_released(spec.render_size):
            self._env = make_raw_env(spec, bddl)
        self._release_build_memory()
        self._settle = np.asarray(spec.settle_action, dtype=np.float64)
        self._privileged = None
        if spec.privileged:
            from vla_bench.envs.privileged import PrivilegedReader

            self._privileged = PrivilegedReader(self._env.env)
        self._gates: list[CameraGate] = []
        # Seed of the scene's last full reset; BUILT while the scene is the one the constructor just
        # compiled (see _reusable).
        self._scene_seed: int | None | object = BUILT
        # LIBERO appends one open/close (or on/off) sampler per scene build and never drops the old
        # ones; see _forget_stale_samplers.
        self._n_property_samplers = len(self._env.env.object_property_initializers)

    @property
    def raw(self):
        """The underlying LIBERO ControlEnv (privileged access for tests and scripted policies)."""
        return self._env

    def _release_build_memory(self) -> None:
        """After every scene build: see free_last_xml, trim_heap and release_texture_pixels."""
        free_last_xml()
        trim_heap()
        release_texture_pixels(self._env.env.sim, self.spec.render_size)

    def _install_gates(self) -> None:
        """Put a CameraGate in front of every camera sensor. robosuite's hard reset installs fresh
        sensors, so this runs after every reset."""
        robosuite_env = self._env.env
        self._gates = []
        for camera in self.spec.cameras:
            name = f"{camera}_image"
            # robosuite has no public getter for an observable's sensor; we wrap it, unchanged.
            current = robosuite_env._observables[name]._sensor
            if isinstance(current, CameraGate):  # a soft reset keeps the sensors
                gate = current
            else:
                gate = CameraGate(current, self.spec.render_size, self.spec.render_size)
                robosuite_env.modify_observable(observable_name=name, attribute="sensor", modifier=gate)
            self._gates.append(gate)

    def _set_rendering(self, render: bool) -> None:
        for gate in self._gates:
            gate.open = render

    def _owns_gl_context(self) -> bool:
        """Whether this env's GL context is still the current one. robosuite renders into whichever
        context is current; once another env in this process has built or freed a context, only a
        hard reset (which builds a fresh context) renders this env's frames correctly again."""
        context = getattr(self._env.env.sim, "_render_context_offscreen", None)
        if context is None:
            return True  # headless: no GL at all
        if os.environ.get("MUJOCO_GL", "egl") != "egl":
            return False  # no cheap way to ask other backends; keep the safe path
        from OpenGL import EGL

        current = EGL.eglGetCurrentContext()
        own = getattr(context.gl_ctx, "_context", None)
        return bool(current) and own is not None and current.address == own.address

    def _forget_stale_samplers(self) -> None:
        """Make the coming reset draw exactly the random numbers of a freshly built env's first reset.

        Every LIBERO scene build (each hard reset) appends a new sampler for each articulated fixture
        (drawer open/closed, stove on/off) to `object_property_initializers` and keeps the old ones,
        and each reset draws one number from every sampler before placing the fixtures. The n-th
        reset of an env therefore places fixtures such as the wooden cabinet up to ~1 cm away from
        where the first reset of a fresh env does, from the same seed; init states set only qpos/qvel,
        so the fixture stays there. Without this an episode's outcome depends on how many episodes
        its env ran before (expert, libero_spatial task 4, init state 1: 117 steps first, 118 after one
        other episode, 116 after three). Dropping the stale samplers, which only repeat the draw for
        the same joint, makes every episode start like the first episode of a fresh env."""
        del self._env.env.object_property_initializers[self._n_property_samplers :]

    def _draw_like_a_first_hard_reset(self) -> None:
        """Give the constructor's scene the sampler list a fresh env's first (hard) reset draws from.

        That reset builds the scene a second time, so it draws from the constructor's fixture samplers
        and then from its own identical ones (see _forget_stale_samplers). The samplers hold no state
        (one uniform draw within the joint's range, applied to the joint by name), so repeating the
        constructor's list makes the soft reset draw the same numbers in the same order, and every
        later reset finds the list a hard-reset scene has."""
        initializers = self._env.env.object_property_initializers
        initializers.extend(initializers[: self._n_property_samplers])

    def _soft_reset(self) -> None:
        """robosuite's reset without rebuilding the model, the sim and the GL context (~0.5 s instead of
        ~2 s): mj_resetData, then the same sampling (robot noise, fixture placement) as a hard reset, so
        from the same seed it draws the same numbers and places the fixtures identically; set_init_state
        then sets qpos/qvel. bench/check_reset.py compares it with a fresh env's first episode on every
        task (observations, images, success, fixtures, final sim state): identical."""
        robosuite_env = self._env.env
        previous, robosuite_env.hard_reset = robosuite_env.hard_reset, False
        try:
            self._env.reset()
        finally:
            robosuite_env.hard_reset = previous

    def _reusable(self, seed: int) -> bool:
        """Whether the next episode may start with the soft reset: the scene was built by the
        constructor (not yet reset) or last hard-reset from the same seed, and its GL context is current.

        The constructor compiles the same scene a hard reset compiles (LIBERO draws no random number
        while building it), so the soft reset applies to the first episode too and a worker compiles
        each task's scene once instead of twice. `bench/check_reset.py` compares this first episode,
        like every other, with a fresh env's hard-reset one."""
        return (self._scene_seed is BUILT or self._scene_seed == seed) and self._owns_gl_context()

    def start(self, init_idx: int, seed: int, render: bool = True) -> Observation:
        if not 0 <= init_idx < self.n_init_states:
            raise VlaBenchError(f"init state {init_idx} out of range (task has {self.n_init_states})")
        self._env.seed(seed)
        if self.spec.fast_reset and self._reusable(seed):
            if self._scene_seed is BUILT:
                self._draw_like_a_first_hard_reset()
            self._soft_reset()
            self._scene_seed = seed
        else:
            self._forget_stale_samplers()  # a soft reset builds no scene, so adds no sampler
            with build_memory_released(self.spec.render_size):
                self._env.reset()
            self._release_build_memory()
            self._scene_seed = seed
        self._install_gates()
        self._set_rendering(render and self.spec.settle_steps == 0)
        raw = self._env.set_init_state(self._init_states[init_idx])
        for i in range(self.spec.settle_steps):
            self._set_rendering(render and i == self.spec.settle_steps - 1)
            raw, _, _, _ = self._env.step(self._settle)
        if self._privileged is not None:
            self._privileged.reset()  # reset() may rebuild the scene
        return self._with_privileged(process_raw(raw, self.spec, self.language, with_images=render))

    def step(self, action: np.ndarray, render: bool = True) -> tuple[Observation, bool]:
        self._set_rendering(render)
        raw, _, done, _ = self._env.step(check_action(action))
        return self._with_privileged(process_raw(raw, self.spec, self.language, with_images=render)), bool(done)

    def _with_privileged(self, obs: Observation) -> Observation:
        if self._privileged is not None:
            obs.privileged = self._privileged.read()
        return obs

    def close(self) -> None:
        env, self._env = self._env, None
        if env is not None:
            env.close()
