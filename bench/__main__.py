"""Run every benchmark in turn: ``python -m bench`` (``--quick`` for a smoke run)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from bench import board, calendar, chains, connectors, daemon, kpi, predict, sla

# Each entry is a bench module's ``main(argv)``; add new benchmarks here.
BENCHES: list[tuple[str, Callable[[Sequence[str] | None], int]]] = [
    ("calendar", calendar.main),
    ("sla", sla.main),
    ("predict", predict.main),
    ("daemon", daemon.main),
    ("chains", chains.main),
    ("kpi", kpi.main),
    ("connectors", connectors.main),
    ("board", board.main),
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small samples (smoke run)")
    args = parser.parse_args(argv)
    status = 0
    for k, (name, bench_main) in enumerate(BENCHES):
        if k:
            print()
        print(f"=== bench.{name}")
        status = max(status, bench_main(["--quick"] if args.quick else []))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
