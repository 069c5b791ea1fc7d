"""Install checks that need no simulator run: config writing and missing-asset errors."""

import pytest
import yaml

from vla_bench.envs import libero_setup
from vla_bench.errors import VlaBenchError


def test_missing_assets_say_how_to_install(tmp_path, monkeypatch):
    (tmp_path / "libero").mkdir()
    monkeypatch.setattr(libero_setup, "libero_root", lambda: tmp_path / "libero")
    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path / "cfg"))
    with pytest.raises(VlaBenchError, match=r"assets missing at .*make install"):
        libero_setup.ensure_ready()


def test_config_points_at_the_installed_package(tmp_path, monkeypatch):
    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path))
    path = libero_setup.write_config()
    config = yaml.safe_load(path.read_text())
    root = libero_setup.libero_root()
    assert config["bddl_files"] == str(root / "bddl_files") and config["assets"] == str(root / "assets")
    assert (root / "assets" / "scenes").is_dir()  # linked by make install
