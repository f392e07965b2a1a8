"""What the build's private network (netns + slirp4netns) costs a RUN step.

Usage (as root): ``.venv/bin/python bench/network.py [--steps 20] [--rounds 5]
[--runtime runc,crun] [--work DIR]``.

One store with a busybox base (set up untimed). Then, for each runtime and each round, the
same Dockerfile of ``--steps`` trivial RUN steps is built with ``--no-cache`` and
``--network host``, ``default`` and ``none`` (in turn, so drift hits all three alike).
From ``--trace`` it takes the RUN steps' wall times: the first RUN of a ``default`` build
also makes the namespace and starts slirp4netns (once per build), the others only join
it. Prints medians: whole build, first RUN, the other RUNs per step, and the difference
to ``host``. Numbers are one run on a shared 2-core VM: compare, do not quote absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OCIBUILD = [str(REPO / ".venv" / "bin" / "python"), "-m", "ocibuild"]
MODES = ("host", "default", "none")


def ocibuild(store: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH",)}
    env["OCIBUILD_ROOT"] = str(store)
    subprocess.run([*OCIBUILD, *args], check=True, env=env, capture_output=True)


def make_base(work: Path, store: Path) -> None:
    ctx = work / "base"
    ctx.mkdir()
    shutil.copy(shutil.which("busybox") or "/bin/busybox", ctx / "busybox")
    (ctx / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
    )
    ocibuild(store, "build", "-t", "netbench-base", str(ctx))


def one_build(work: Path, store: Path, runtime: str, mode: str, steps: int) -> dict[str, float]:
    ctx = work / "ctx"
    ctx.mkdir(exist_ok=True)
    text = "FROM netbench-base\n" + "".join(f"RUN echo step {i}\n" for i in range(steps))
    (ctx / "Dockerfile").write_text(text)
    trace = work / f"trace-{runtime}-{mode}.jsonl"
    trace.unlink(missing_ok=True)
    started = time.monotonic()
    ocibuild(store, "build", "--no-cache", "--runtime", runtime, "--network", mode,
             "--trace", str(trace), str(ctx))  # fmt: skip
    total = time.monotonic() - started
    runs = [
        float(r["seconds"])
        for r in map(json.loads, trace.read_text().splitlines())
        if str(r.get("instruction", "")).upper().startswith("RUN")
    ]
    return {"total": total, "first": runs[0], "rest": statistics.mean(runs[1:])}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--runtime", default="runc,crun")
    p.add_argument("--work", help="work dir (default: a new one under /var/tmp, removed)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    work = Path(args.work or tempfile.mkdtemp(prefix="ocibuild-netbench-", dir="/var/tmp"))
    store = work / "store"
    try:
        make_base(work, store)
        print(f"{args.steps} trivial RUN steps, --no-cache, median of {args.rounds} rounds\n")
        print("| runtime | --network | build s | first RUN ms | other RUNs ms/step "
              "| vs host ms/step |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for runtime in args.runtime.split(","):
            samples: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
            one_build(work, store, runtime, "default", 2)  # warm-up (page cache, bytecode)
            for _ in range(args.rounds):
                for mode in MODES:
                    samples[mode].append(one_build(work, store, runtime, mode, args.steps))
            med = {
                m: {k: statistics.median(s[k] for s in samples[m]) for k in samples[m][0]}
                for m in MODES
            }
            for mode in MODES:
                m = med[mode]
                delta = (m["rest"] - med["host"]["rest"]) * 1000
                print(f"| {runtime} | {mode} | {m['total']:.2f} | {m['first'] * 1000:.0f} "
                      f"| {m['rest'] * 1000:.1f} | {delta:+.1f} |")  # fmt: skip
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
