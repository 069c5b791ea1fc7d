"""Where the memory of one LIBERO env worker goes (run by `make bench-memory`).

Each measurement runs in a fresh spawned process, like an engine worker, and records after every
stage (interpreter, imports, env build, first episode start with rendering, N rendered steps):
RSS, USS and PSS (psutil `memory_full_info`), the process's peak RSS so far (`ru_maxrss`), and
/proc/self/smaps grouped by mapping (heap and anonymous memory, each shared library, the GL
driver). tracemalloc cannot see MuJoCo's or Mesa's C allocations, so the MuJoCo side is read from
the compiled model itself: `model.nbuffer`, `data.nbuffer`, texture bytes and the offscreen
framebuffer size. A second process measures importing torch alone (LIBERO's benchmark module
imports it). Writes bench/results/env-memory-<date>-<host>.{json,md}.

`--trace` also finds where inside the env build the peak happens: the rendered run's process marks
the build's steps (MuJoCo compile, last-XML free, heap trims, GL context creation, texture-pixel
release) with its VmRSS and VmHWM from /proc/self/status, and the parent samples the child's VmRSS
every few milliseconds; the report names the step after which the highest sample was taken.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import multiprocessing
import os
import resource
import socket
import sys
import time
from pathlib import Path

MB = 1e6
SUITE, TASK = "libero_spatial", 0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def smaps_groups() -> dict[str, dict[str, float]]:
    """Rss / Pss / Private MB of this process, summed per mapping group (heap, anonymous, each file)."""
    groups: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    name = "?"
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if not fields[0].endswith(":"):  # a mapping header: address perms offset dev inode [path]
                path = fields[5] if len(fields) > 5 else ""
                name = _group(path)
                continue
            key = fields[0][:-1]
            if key in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
                groups[name]["private" if key.startswith("Private") else key.lower()] += int(fields[1]) * 1024 / MB
    return {k: {m: round(v, 1) for m, v in c.items()} for k, c in groups.items()}


def _group(path: str) -> str:
    if not path:
        return "[anonymous]"
    if path.startswith("["):
        return path  # [heap], [stack], [vdso]...
    if "/dri/" in path or "libgallium" in path or "libLLVM" in path:
        return "GL driver (Mesa): " + os.path.basename(path)
    if "llvmlite" in path:
        return "numba's LLVM (robosuite imports numba)"
    if "/torch/" in path:
        return "torch libraries"
    if "/mujoco/" in path:
        return "mujoco: " + os.path.basename(path)
    if "site-packages" in path:
        return "other site-packages libraries"
    if path.startswith("/dev/"):
        return "devices: " + os.path.basename(path)
    return "system libraries"


def snapshot(stage: str, seconds: float) -> dict:
    import psutil

    info = psutil.Process().memory_full_info()
    groups = smaps_groups()
    top = sorted(groups.items(), key=lambda kv: -kv[1].get("rss", 0))
    return {
        "stage": stage,
        "seconds": round(seconds, 2),
        "rss_mb": round(info.rss / MB, 1),
        "uss_mb": round(info.uss / MB, 1),
        "pss_mb": round(info.pss / MB, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "torch_imported": "torch" in sys.modules,
        "smaps": dict(top),
    }


def mujoco_sizes(env) -> dict:
    """Sizes read from the compiled MuJoCo model of a LiberoEnv and its render context."""
    sim = env.raw.env.sim
    model, data = sim.model._model, sim.data._data
    sizes = {
        "model_nbuffer_mb": round(model.nbuffer / MB, 1),
        "data_nbuffer_mb": round(data.nbuffer / MB, 1),
        "data_narena_mb": round(data.narena / MB, 1),
        "textures": int(model.ntex),
        "texture_mb": round(model.tex_data.nbytes / MB, 1),
        "meshes": int(model.nmesh),
        "mesh_vertices": int(model.nmeshvert),
        "offscreen_framebuffer": [int(model.vis.global_.offwidth), int(model.vis.global_.offheight)],
        "model_xml_chars": len(getattr(env.raw.env, "model", None).get_xml()) if hasattr(env.raw.env, "model") else None,
    }
    import mujoco

    cache = mujoco.mj_getCache()
    sizes["asset_cache_mb"] = round(mujoco.mj_getCacheSize(cache) / MB, 1)
    sizes["asset_cache_capacity_mb"] = round(mujoco.mj_getCacheCapacity(cache) / MB, 1)
    texture_detail = []
    for i in range(model.ntex):
        w, h, c = int(model.tex_width[i]), int(model.tex_height[i]), int(model.tex_nchannel[i])
        texture_detail.append(w * h * c)
    sizes["largest_textures_mb"] = [round(b / MB, 1) for b in sorted(texture_detail, reverse=True)[:5]]
    context = getattr(sim, "_render_context_offscreen", None)
    if context is not None:
        sizes["render_context"] = type(context).__name__
    return sizes


def proc_status_mb(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, MB, from /proc/<pid>/status."""
    out = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = round(int(value.split()[0]) * 1024 / MB, 1)
    return out


def install_trace(marks: list[dict]) -> None:
    """Record a mark (wall time, step, VmRSS, VmHWM) before and after each memory-relevant step of a
    scene build: robosuite's compile and GL context creation, and vla_bench's releases. Marking stops
    once a mark named "env built" is in the list."""
    from robosuite.utils.binding_utils import MjRenderContext, MjSim

    from vla_bench.envs import libero_env

    def mark(label: str) -> None:
        if not any(m["step"] == "env built" for m in marks):
            marks.append({"t": time.time(), "step": label, **proc_status_mb()})

    def traced(function, label):
        def wrapper(*args, **kwargs):
            mark(f"{label} begins")
            result = function(*args, **kwargs)
            mark(f"{label} done")
            return result

        return wrapper

    for name in ("free_last_xml", "trim_heap", "release_texture_pixels"):
        setattr(libero_env, name, traced(getattr(libero_env, name), name))
    compile_xml = MjSim.__dict__["from_xml_string"].__func__
    MjSim.from_xml_string = classmethod(traced(compile_xml, "MuJoCo compile (MjSim.from_xml_string)"))
    MjRenderContext._set_mujoco_context_and_buffers = traced(
        MjRenderContext._set_mujoco_context_and_buffers, "GL context uploads the model (MjrContext)"
    )
    MjRenderContext.__init__ = traced(MjRenderContext.__init__, "robosuite render context")
    mark("trace installed")


def measure_env(queue, steps: int, render: bool, trace: bool = False) -> None:
    """In a fresh process: stage-by-stage memory of building and running one LIBERO env."""
    t0 = time.monotonic()
    stages = [snapshot("python + psutil", time.monotonic() - t0)]
    marks: list[dict] = []
    import numpy as np

    from vla_bench.envs import EnvSpec, make_env
    from vla_bench.envs.libero_env import load_task
    from vla_bench.specs import protocols

    protocol = protocols().get("openvla")
    load_task(SUITE, TASK)  # LIBERO, robosuite, mujoco (and whatever they import)
    stages.append(snapshot("imports (load_task)", time.monotonic() - t0))
    if trace:
        install_trace(marks)
    spec = EnvSpec.from_protocol(
        protocol, SUITE, TASK, render=render, image_size=protocol.model_image_size, fast_reset=True
    )
    env = make_env("libero", spec)
    stages.append(snapshot("env built", time.monotonic() - t0))
    if trace:
        marks.append({"t": time.time(), "step": "env built", **proc_status_mb()})
    env.start(0, protocol.env_seed, render=render)
    stages.append(snapshot("first episode start (reset, settle)", time.monotonic() - t0))
    action = np.array([0, 0, 0, 0, 0, 0, -1.0])
    for _ in range(steps):
        env.step(action, render=render)
    stages.append(snapshot(f"{steps} steps", time.monotonic() - t0))
    env.start(1, protocol.env_seed, render=render)
    for _ in range(steps):
        env.step(action, render=render)
    stages.append(snapshot(f"second episode ({steps} steps)", time.monotonic() - t0))
    sizes = mujoco_sizes(env)
    stages += teardown(env, time.monotonic() - t0)
    queue.put({"stages": stages, "mujoco": sizes, "env": os.environ.get("MALLOC_ARENA_MAX"), "trace": marks})


def teardown(env, seconds: float) -> list[dict]:
    """Attribute the steady state by freeing it piece by piece (each followed by gc and malloc_trim):
    the GL context (llvmpipe's textures, framebuffers and the MjrContext), then the whole env (the
    compiled model, mjData and robosuite's and LIBERO's scene objects). What remains afterwards is the
    imported libraries and heap that is no longer returned."""
    import gc

    from vla_bench.envs.libero_env import trim_heap

    def release() -> None:
        gc.collect()
        trim_heap()

    out = []
    sim = env.raw.env.sim
    context = getattr(sim, "_render_context_offscreen", None)
    if context is not None:
        context.con.free()
        context.gl_ctx.free()
        sim._render_context_offscreen = None
        del context
        release()
        out.append(snapshot("teardown: GL context freed", seconds))
    del sim
    env._gates = []  # the camera gates hold robosuite's sensors, which hold the env
    env.close()
    release()
    out.append(snapshot("teardown: env closed (model, data, scene objects)", seconds))
    return out


def measure_torch(queue) -> None:
    before = snapshot("python + psutil", 0)
    t0 = time.monotonic()
    import torch  # noqa: F401

    queue.put({"stages": [before, snapshot("import torch", time.monotonic() - t0)]})


def in_child(target, *args, sample: bool = False) -> dict:
    """Run target(queue, *args) in a fresh spawned process and return what it puts on the queue; with
    `sample`, also the child's highest VmRSS sample (polled every ~2 ms) and when it was taken."""
    import queue as queues

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(queue, *args))
    process.start()
    deadline, top = time.monotonic() + 900, {"rss_mb": 0.0, "t": None}
    while True:
        try:
            result = queue.get(timeout=0.002 if sample else 900)
            break
        except queues.Empty:
            if time.monotonic() > deadline:
                raise TimeoutError("the measuring process sent nothing for 900 s") from None
            try:
                rss = proc_status_mb(process.pid)["VmRSS"]
            except (OSError, KeyError):
                continue
            if rss > top["rss_mb"]:
                top = {"rss_mb": rss, "t": time.time()}
    process.join(60)
    if sample:
        result["highest_sample"] = top
    return result


def trace_markdown(run: dict) -> list[str]:
    """The build steps with RSS and peak so far, and the step after which the highest sample came."""
    marks = run.get("trace") or []
    if not marks:
        return []
    top = run.get("highest_sample") or {}
    lines = ["", "Inside the env build (`--trace`; MB, /proc/self/status):", "",
             "| step | VmRSS | VmHWM (peak so far) | s |", "|---|---:|---:|---:|"]
    t0 = marks[0]["t"]
    for m in marks:
        lines.append(f"| {m['step']} | {m['VmRSS']:.0f} | {m['VmHWM']:.0f} | {m['t'] - t0:.2f} |")
    if top.get("t"):
        before = [m for m in marks if m["t"] <= top["t"]]
        after = before[-1]["step"] if before else "the start"
        lines += ["", f"Highest VmRSS sample (parent polling every ~2 ms): {top['rss_mb']:.0f} MB, "
                      f"{top['t'] - t0:.2f} s after the first mark, after: {after}."]
    return lines


def markdown(result: dict) -> str:
    lines = [
        f"# LIBERO env worker memory, {result['date']} on {result['host']} ({result['cpu_count']} CPUs)",
        "",
        f"{SUITE} task {TASK}, openvla protocol (both cameras, 256 px), soft reset; each configuration in a "
        f"fresh spawned process. git {result['git']}. Load average before: {result['load_average_before']}.",
    ]
    if result["note"]:
        lines += ["", f"Note: {result['note']}"]
    for name, run in result["runs"].items():
        lines += ["", f"## {name}", "", "| stage | RSS MB | USS MB | PSS MB | peak RSS MB | torch loaded | s |",
                  "|---|---:|---:|---:|---:|---|---:|"]
        for s in run["stages"]:
            lines.append(
                f"| {s['stage']} | {s['rss_mb']:.0f} | {s['uss_mb']:.0f} | {s['pss_mb']:.0f} | {s['peak_rss_mb']:.0f} "
                f"| {'yes' if s['torch_imported'] else 'no'} | {s['seconds']:.1f} |"
            )
        last = run["stages"][-1]
        lines += ["", f"Largest mappings at the last stage (MB): ", "", "| mapping | RSS | PSS | private |", "|---|---:|---:|---:|"]
        for group, v in list(last["smaps"].items())[:10]:
            lines.append(f"| {group} | {v.get('rss', 0):.0f} | {v.get('pss', 0):.0f} | {v.get('private', 0):.0f} |")
        if "mujoco" in run:
            lines += ["", "MuJoCo: " + ", ".join(f"{k} = {v}" for k, v in run["mujoco"].items())]
        lines += trace_markdown(run)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="rendered steps per episode")
    parser.add_argument("--no-headless", action="store_true", help="skip the run without rendering")
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--label", default="", help="suffix of the output file names (e.g. before)")
    parser.add_argument("--note", default="", help="free text stored with the results")
    parser.add_argument("--trace", action="store_true", help="mark the steps inside the rendered env's build")
    args = parser.parse_args(argv)
    from vla_bench.results import provenance

    load_before = [round(x, 2) for x in os.getloadavg()]
    runs = {"rendered env (2 cameras, 256 px)": in_child(measure_env, args.steps, True, args.trace, sample=args.trace)}
    if not args.no_headless:
        runs["env without rendering"] = in_child(measure_env, args.steps, False)
    runs["import torch alone"] = in_child(measure_torch)
    now = dt.datetime.now(dt.timezone.utc)
    result = {
        "date": now.isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "note": args.note,
        "git": provenance.git_commit(),
        "versions": provenance.versions(),
        "runs": runs,
    }
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"env-memory-{now:%Y-%m-%d}-{socket.gethostname()}" + (f"-{args.label}" if args.label else "")
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
