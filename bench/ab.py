"""Old against new ocibuild on bench.py's workloads, interleaved, repeated.

Usage (as root)::

    .venv/bin/python bench/ab.py --old /work/wt-old --new . [--rounds 10]
        [--only trivial-20,...] [--runtime crun] [--json FILE]

Each tree must have its own ``.venv`` with ocibuild installed editable from that tree.
Every build runs with the tree as its working directory (``python -m`` puts the working
directory first on ``sys.path``). For every workload each side gets its own store with
the base image (untimed); then ``--rounds`` times, in alternating order (old, new, new,
old, ...): a cold build (``--no-cache``: every step runs again, nothing comes from the
cache) and a cached build. The machine is shared: the load varies, so the two sides run
next to each other and the script prints medians and the spread (min-max).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench


def ocibuild(tree: Path) -> list[str]:
    return [str(tree / ".venv" / "bin" / "python"), "-m", "ocibuild"]


def timed(argv: list[str], cwd: Path, log: Path, cpu: list[float] | None = None) -> float:
    """Wall seconds of ``argv``; appends its CPU seconds (user + system, with every
    descendant it waited for) to ``cpu``: steadier than wall time on a loaded machine."""
    started = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=bench.ENV, stdout=out, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise SystemExit(f"build failed ({rc}): {' '.join(argv)}; see {log}")
    if cpu is not None:
        cpu.append(usage.ru_utime + usage.ru_stime)
    return seconds


def step_phases(trace: Path) -> dict[str, float]:
    """Mean milliseconds per RUN step of each ``*seconds`` field of a ``--trace`` file."""
    records = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    steps = [r for r in records if str(r.get("instruction", "")).startswith("RUN")]
    if not steps:
        return {}
    keys = [k for k in steps[0] if k.endswith("seconds")]
    out = {
        k.removesuffix("_seconds"): 1000 * sum(float(r[k]) for r in steps) / len(steps)
        for k in keys
    }
    out["outside runtime"] = out["seconds"] - out.get("runtime", 0.0)
    return out


def own_share(trace: Path) -> tuple[float, float] | None:
    """ocibuild's own seconds in the big-run workload's 300 MB step (prepare, diff, hash,
    write, cleanup) and their share of the step's time (as ``bench.big_layer_check``)."""
    records = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    step = next((r for r in records if str(r.get("instruction", "")).startswith(BIG)), None)
    if step is None:
        return None
    own = sum(float(step[f"{k}_seconds"]) for k in ("prepare", "diff", "hash", "write", "cleanup"))
    return own, own / float(step["seconds"])


BIG = "RUN mkdir -p /big"


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, type=Path)
    ap.add_argument("--new", required=True, type=Path)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--only", default="trivial-20")
    ap.add_argument("--runtime", help="--runtime for both sides (default: theirs)")
    ap.add_argument("--extra", default="", help="more build arguments for both sides")
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/ocibuild-ab"))
    ap.add_argument("--json")
    args = ap.parse_args()
    sides = {"old": args.old.resolve(), "new": args.new.resolve()}
    for tree in sides.values():
        subprocess.run([*ocibuild(tree)[:1], "-m", "compileall", "-q", str(tree / "ocibuild")])
    wanted = args.only.split(",")
    workloads = [w for w in bench.WORKLOADS if w.name in wanted]
    results: dict[str, Any] = {}
    logs = args.work / "logs"
    for w in workloads:
        tree = (
            bench.busybox_tree(args.work) if w.base == "busybox" else bench.debian_tree(args.work)
        )
        base_ctx = bench.base_context(tree)
        ctx = args.work / f"ctx-{w.name}"
        if not (ctx / "Dockerfile").exists():
            shutil.rmtree(ctx, ignore_errors=True)
            ctx.mkdir(parents=True)
            if w.prepare:
                w.prepare(ctx)
            (ctx / "Dockerfile").write_text(w.dockerfile.replace("BASE", f"base-{w.base}"))
        stores = {}
        for name, src in sides.items():
            store = args.work / f"store-{name}"
            shutil.rmtree(store, ignore_errors=True)
            logs.mkdir(parents=True, exist_ok=True)
            log = logs / f"{w.name}-{name}.log"
            log.unlink(missing_ok=True)
            argv = [*ocibuild(src), "build", "--root", str(store), "-t", f"base-{w.base}"]
            timed([*argv, str(base_ctx)], src, log)
            stores[name] = store
        got: dict[str, dict[str, list[float]]] = {
            n: {"cold": [], "cached": [], "cold cpu": [], "cached cpu": []} for n in sides
        }
        phases: dict[str, dict[str, list[float]]] = {n: {} for n in sides}
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for name in order:
                src, store = sides[name], stores[name]
                log = logs / f"{w.name}-{name}.log"
                argv = [*ocibuild(src), "build", "--root", str(store), "-t", "out"]
                if args.runtime:
                    argv += ["--runtime", args.runtime]
                argv += args.extra.split()
                trace = logs / f"{w.name}-{name}.trace.json"
                trace.unlink(missing_ok=True)
                cold = [*argv, "--no-cache", "--trace", str(trace), str(ctx)]
                got[name]["cold"].append(timed(cold, src, log, got[name]["cold cpu"]))
                for key, value in step_phases(trace).items():
                    phases[name].setdefault(key, []).append(value)
                big = own_share(trace)
                if big is not None:  # printed in ms like the others: x1000 for seconds
                    phases[name].setdefault("big step own", []).append(1000 * big[0])
                    phases[name].setdefault("big step own %", []).append(100 * big[1])
                got[name]["cached"].append(
                    timed([*argv, str(ctx)], src, log, got[name]["cached cpu"])
                )
        results[w.name] = got
        for phase in ("cold", "cold cpu", "cached", "cached cpu"):
            old, new = got["old"][phase], got["new"][phase]
            ratio = statistics.median(new) / statistics.median(old)
            print(
                f"{w.name:12} {phase:10} old {summary(old)}  new {summary(new)}  "
                f"new/old {ratio:.3f}",
                flush=True,
            )
        for key in sorted(phases["new"]):
            old, new = phases["old"].get(key), phases["new"][key]
            if old:
                print(
                    f"{w.name:12} RUN step {key:16} ms: old {summary(old)}  new {summary(new)}"
                    f"  new-old {statistics.median(new) - statistics.median(old):+.2f}",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
