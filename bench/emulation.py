"""What QEMU user emulation costs a RUN step: the same RUN steps for linux/arm64 (through
the aarch64 emulator in binfmt_misc) and linux/amd64 (native) on this amd64 machine.

Usage (as root): ``.venv/bin/python bench/emulation.py [--rounds 5] [--loop 20000]
[--execs 200] [--work DIR] [--no-multi]``.

Base: the two-platform Debian index of ``conformance.multiarch`` (debootstrap minbase
bookworm for amd64 and arm64, made once and cached), read by ``FROM oci-layout://``; one
store, the base imported for both platforms first (untimed). Then, each round, one
``--no-cache`` build per platform (the platforms in turn, so load drift hits both alike)
of a Dockerfile whose RUN steps are:

- ``RUN true``: the fixed cost of a step (runtime, overlay, diff) plus one emulated exec;
- a shell loop of ``--loop`` iterations in dash (interpretation: TCG's translated code);
- ``dpkg -l`` (reads the package database, formats 90 lines: a typical tool run);
- ``--execs`` runs of ``/bin/true`` (process start under the emulator, paid per exec).

From ``--trace`` it takes each step's wall time and prints medians per platform and the
ratio arm64/amd64. Unless ``--no-multi``, it also times the whole two-platform build
(``--platform linux/amd64,linux/arm64``, ``--no-cache``) with ``--platform-jobs 1`` and
``2`` in turn. Numbers are from a shared 2-core VM: compare ratios, not absolutes.
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
sys.path.insert(0, str(REPO))
OCIBUILD = [str(REPO / ".venv" / "bin" / "python"), "-m", "ocibuild"]
PLATFORMS = ("linux/amd64", "linux/arm64")


def ocibuild(store: Path, *args: str) -> float:
    """Run ocibuild against ``store``; its wall time."""
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    env["OCIBUILD_ROOT"] = str(store)
    started = time.monotonic()
    proc = subprocess.run([*OCIBUILD, *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"ocibuild {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - started


def steps(loop: int, execs: int) -> list[tuple[str, str]]:
    """(label, RUN command) of the timed steps."""
    return [
        ("RUN true", "true"),
        (f"shell loop x{loop}", f"i=0; while [ $i -lt {loop} ]; do i=$((i+1)); done"),
        ("dpkg -l", "dpkg -l > /dev/null"),
        (f"/bin/true x{execs}", f"for i in $(seq {execs}); do /bin/true; done"),
    ]


def dockerfile(base: str, runs: list[tuple[str, str]]) -> str:
    return f"FROM {base}\n" + "".join(f"RUN {cmd}\n" for _, cmd in runs)


def one_build(store: Path, ctx: Path, trace: Path, plat: str) -> list[float]:
    """One --no-cache build for ``plat``; the RUN steps' wall times, in order."""
    trace.unlink(missing_ok=True)
    ocibuild(store, "build", "-q", "--no-cache", "--platform", plat, "--trace", str(trace),
             str(ctx))  # fmt: skip
    records = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    return [float(r["seconds"]) for r in records if str(r["instruction"]).startswith("RUN")]


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/emulation.py")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop", type=int, default=20000)
    parser.add_argument("--execs", type=int, default=200)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--no-multi", action="store_true", help="skip the two-platform build")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    from conformance.multiarch import debian_index_layout

    layout = debian_index_layout()
    work = Path(tempfile.mkdtemp(prefix="ocibuild-platbench-", dir=args.work))
    try:
        store, ctx = work / "store", work / "ctx"
        ctx.mkdir()
        runs = steps(args.loop, args.execs)
        base = f"oci-layout://{layout}:bookworm"
        (ctx / "Dockerfile").write_text(f"FROM {base}\nRUN true\n")
        for plat in PLATFORMS:  # untimed: the base imported for both platforms
            ocibuild(store, "build", "-q", "--platform", plat, str(ctx))
        (ctx / "Dockerfile").write_text(dockerfile(base, runs))
        times: dict[str, list[list[float]]] = {p: [] for p in PLATFORMS}
        for _ in range(args.rounds):
            for plat in PLATFORMS:
                times[plat].append(one_build(store, ctx, work / "trace.jsonl", plat))
        print(f"RUN steps on the two-platform Debian base, --no-cache, median of {args.rounds}"
              " rounds (platforms interleaved)\n")  # fmt: skip
        print("| RUN step | amd64 (native) s | arm64 (emulated) s | arm64/amd64 |")
        print("|---|---|---|---|")
        for i, (label, _) in enumerate(runs):
            native = statistics.median(t[i] for t in times["linux/amd64"])
            emulated = statistics.median(t[i] for t in times["linux/arm64"])
            print(f"| {label} | {native:.3f} | {emulated:.3f} | {emulated / native:.1f} |")
        if not args.no_multi:
            multi(store, ctx, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def multi(store: Path, ctx: Path, rounds: int) -> None:
    """The whole two-platform build, platforms one after the other against at once."""
    walls: dict[str, list[float]] = {"1": [], "2": []}
    for _ in range(rounds):
        for jobs in walls:
            walls[jobs].append(
                ocibuild(
                    store,
                    "build",
                    "-q",
                    "--no-cache",
                    "--platform",
                    ",".join(PLATFORMS),
                    "--platform-jobs",
                    jobs,
                    str(ctx),
                )
            )
    serial, parallel = statistics.median(walls["1"]), statistics.median(walls["2"])
    print(f"\ntwo-platform build (--platform {','.join(PLATFORMS)}, --no-cache), median of "
          f"{rounds}: --platform-jobs 1 {serial:.2f} s, --platform-jobs 2 {parallel:.2f} s "
          f"({parallel / serial:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
