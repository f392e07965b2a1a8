"""Rewrite the golden files (conformance/goldens/CASE.json) from a running BuildKit.

    python -m conformance.regen [-k SUBSTRING] [-j JOBS]      (or: make conformance-regen)

Every case without a whole written expectation is built by BuildKit from the bases in
the local registry (pushed there first, digests preserved); what the image adds, changes
and removes relative to its base, and its config fields, are recorded. Without ``-k``,
golden files of cases that no longer exist are removed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from conformance import buildkit
from conformance.case import Case
from conformance.golden import GOLDENS, read_golden


def regen(cases: list[Case], jobs: int, *, prune: bool) -> int:
    from conformance.harness import Harness, select, with_work

    why = buildkit.buildkit_available()
    if why is not None:
        print(f"regenerating goldens needs a running BuildKit: {why}", file=sys.stderr)
        return 2
    todo = [c for c in cases if c.expect is None]
    started = time.monotonic()

    def go(work: Path) -> int:
        harness = Harness(work, jobs)
        outcomes = harness.run(todo, harness.regen_case)
        failed = 0
        for o in outcomes:
            if o.status == "differing":
                failed += 1
                print(f"FAILED {o.case.name}: {'; '.join(o.problems)}")
            else:
                print(f"{o.case.name}: {'; '.join(o.notes)} ({o.seconds:.1f}s)")
            golden = read_golden(o.case.name)
            env = golden.result.config.get("Env", []) if golden else []
            if any(v.startswith(("OTEL_", "TRACEPARENT")) for v in env):
                failed += 1  # v0.11.6 injects these into RUN only; in a config they are a leak
                print(f"FAILED {o.case.name}: tracing variables in the image config: {env}")
        return 1 if failed else 0

    status = with_work(go)
    if prune:
        names = {c.name for c in select(None) if c.expect is None}
        for path in sorted(GOLDENS.glob("*.json")):
            if path.stem not in names:
                print(f"removing {path.name}: no such case")
                path.unlink()
    print(f"{len(todo)} goldens written in {time.monotonic() - started:.0f}s")
    return status


def main(argv: list[str] | None = None) -> int:
    from conformance.harness import select

    parser = argparse.ArgumentParser(prog="conformance.regen")
    parser.add_argument("-k", help="only cases whose name contains this")
    parser.add_argument("-j", "--jobs", type=int, default=3)
    args = parser.parse_args(argv)
    return regen(select(args.k), args.jobs, prune=not args.k)


if __name__ == "__main__":
    sys.exit(main())
