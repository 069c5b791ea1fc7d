"""$VLA_BENCH_ASSET_CACHE: which env workers keep MuJoCo's asset cache, and bad values."""

from __future__ import annotations

import pytest

from vla_bench.envs import EnvSpec
from vla_bench.envs.libero_env import ASSET_CACHE_VARIABLE, asset_cache_mode, keeps_asset_cache, set_asset_cache
from vla_bench.errors import VlaBenchError
from vla_bench.specs import protocols


def spec(render: bool) -> EnvSpec:
    return EnvSpec.from_protocol(protocols().get("openvla"), "libero_spatial", 0, render=render)


@pytest.mark.parametrize(
    ("value", "rendered", "unrendered"),
    [(None, False, True), ("auto", False, True), ("keep", True, True), ("off", False, False), ("KEEP", True, True)],
)
def test_modes(monkeypatch, value, rendered, unrendered):
    if value is None:
        monkeypatch.delenv(ASSET_CACHE_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(ASSET_CACHE_VARIABLE, value)
    assert keeps_asset_cache(spec(render=True)) is rendered
    assert keeps_asset_cache(spec(render=False)) is unrendered


def test_bad_value_is_one_line(monkeypatch):
    monkeypatch.setenv(ASSET_CACHE_VARIABLE, "sometimes")
    with pytest.raises(VlaBenchError) as error:
        asset_cache_mode()
    assert "\n" not in str(error.value) and "auto, keep, off" in str(error.value)


def test_set_asset_cache_changes_mujocos_capacity():
    mujoco = pytest.importorskip("mujoco")
    cache = mujoco.mj_getCache()
    before = mujoco.mj_getCacheCapacity(cache)
    try:
        set_asset_cache(False)
        assert mujoco.mj_getCacheCapacity(cache) == 1
        set_asset_cache(True)
        assert mujoco.mj_getCacheCapacity(cache) == 512 * 1024 * 1024
    finally:
        mujoco.mj_setCacheCapacity(cache, before)
