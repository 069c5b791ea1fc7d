"""`vla-bench doctor`: check an installation for simulator drift."""

from __future__ import annotations

import dataclasses

from vla_bench.commands import command


@dataclasses.dataclass(frozen=True)
class DoctorCommand:
    """Check LIBERO assets, the renderer, simulator versions and scene fingerprints; exit 1 on any mismatch."""

    write_golden: bool = False
    """Rewrite the golden fingerprints (vla_bench/data/fingerprints.json) from this installation (only on a known-good install)."""


@command("doctor", DoctorCommand)
def cmd_doctor(config: DoctorCommand) -> int:
    from vla_bench import doctor

    if config.write_golden:
        print(f"wrote {doctor.write_golden()}")
        return 0
    verdicts = doctor.run_checks()
    for verdict in verdicts:
        print(verdict.line(), flush=True)
    failed = [v.name for v in verdicts if not v.ok]
    print(f"doctor: {'all checks passed' if not failed else 'FAILED: ' + ', '.join(failed)}")
    return 1 if failed else 0
