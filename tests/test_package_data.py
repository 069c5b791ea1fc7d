"""The package carries its data: a built wheel holds the suites, protocols, baselines and doctor's
references, and an installed copy of it works outside the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_FILES = (
    "suites.toml",
    "protocols.toml",
    "baselines.toml",
    "fingerprints.json",
    "expert_reference.jsonl",
    "simulator_pins.txt",
)


def test_wheel_holds_the_package_data(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    [wheel] = tmp_path.glob("vla_bench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in DATA_FILES:
        assert f"vla_bench/data/{name}" in names, name
        assert (ROOT / "vla_bench" / "data" / name).read_bytes() == zipfile.ZipFile(wheel).read(f"vla_bench/data/{name}")
    # Loaded from the unpacked wheel, away from the source tree: suites, protocols and baselines resolve.
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = (
        "import sys; sys.path.insert(0, %r);"
        "import vla_bench, vla_bench.specs as s, vla_bench.report.baselines as b, vla_bench.doctor as d;"
        "assert vla_bench.__file__.startswith(%r), vla_bench.__file__;"
        "print(len(s.suites().names()), len(s.protocols().names()), len(b.baselines().names()), sorted(d.pinned_versions())[0])"
    ) % (str(unpacked), str(unpacked))
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe], cwd=tmp_path,
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout.split()
    assert int(out[0]) >= 5 and int(out[1]) >= 2 and int(out[2]) >= 1 and out[3] == "bddl"
