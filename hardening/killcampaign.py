"""kill -9 campaign: SIGKILL ocibuild at random moments, then check the store.

Each trial starts an operation (a build with RUN, COPY and several layers; pulls and
pushes where a registry is given), kills it with SIGKILL after a random delay, and then
asserts what a user relies on:

- ``ocibuild fsck`` finds every blob matching its digest and every tag complete; what a
  dead process left (scratch dirs, containers, mounts) is reported as fixable only;
- after ``ocibuild prune``, fsck finds nothing and no process of the trial still runs;
- the next build succeeds.

    python -m hardening.killcampaign --trials 200 [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

FIXABLE = {"stale-scratch", "leftover-container", "leftover-mount", "incomplete-layer"}

BASE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /tmp && echo 'root:x:0:0::/root:/bin/sh' > /etc/passwd
"""

WORKLOADS = {
    "run-sleep": "FROM base:kill\nRUN echo {n} > /n && sleep 5 && echo done\n",
    "many-layers": "FROM base:kill\n" + "".join(f"RUN echo {{n}}-{i} > /f{i}\n" for i in range(8)),
    "big-write": "FROM base:kill\nRUN dd if=/dev/urandom of=/big bs=1M count=24 2>/dev/null"
    " && echo {n}\nRUN rm /big && echo {n} > /small\n",
    "copy": "FROM base:kill\nCOPY data /data\nRUN ls /data | wc -l && echo {n}\n",
}


@dataclass
class Trial:
    number: int
    workload: str
    delay: float
    exit: int | None
    fsck_before: list[str]
    fsck_after: list[str]
    rebuild_ok: bool
    stray_processes: list[str]

    @property
    def consistent(self) -> bool:
        kinds = {f.split(":", 1)[0] for f in self.fsck_before}
        return (
            kinds <= FIXABLE
            and not self.fsck_after
            and self.rebuild_ok
            and not self.stray_processes
        )


def ocibuild(root: str, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OCIBUILD_ROOT": root}
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "ocibuild", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        **kw,
    )


def fsck(root: str) -> list[str]:
    res = ocibuild(root, "fsck", "--json")
    return [f"{f['kind']}: {f['subject']}" for f in json.loads(res.stdout or "[]")]


def processes_mentioning(text: str) -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            out.append(f"{pid}: {cmd.strip()}")
    return out


def prepare(root: str, work: Path) -> None:
    base = work / "base"
    base.mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", base / "busybox")
    (base / "Dockerfile").write_text(BASE)
    res = ocibuild(root, "build", "-t", "base:kill", str(base))
    if res.returncode != 0:
        raise SystemExit(res.stderr)
    data = work / "ctx" / "data"
    data.mkdir(parents=True, exist_ok=True)
    for i in range(300):
        (data / f"file{i}").write_bytes(os.urandom(16384))


def trial(root: str, work: Path, number: int, rng: random.Random) -> Trial:
    name = rng.choice(sorted(WORKLOADS))
    marker = f"killtrial-{os.getpid()}-{number}"
    ctx = work / "ctx"
    (ctx / "Dockerfile").write_text(f"# {marker}\n" + WORKLOADS[name].format(n=f"{marker}"))
    delay = rng.uniform(0.1, 0.9)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocibuild", "build", "-t", f"kill:{number % 5}", str(ctx)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "OCIBUILD_ROOT": root},
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    code = proc.wait()
    time.sleep(0.2)
    # ocibuild runs as init of its own PID namespace with a parent-death signal: its
    # runtimes and containers die with it, before any prune
    survivors = processes_mentioning(marker)
    before = fsck(root)
    ocibuild(root, "prune")
    stray = processes_mentioning(marker)
    after = fsck(root)
    rebuild = ocibuild(root, "build", "-q", str(ctx))
    return Trial(
        number, name, delay, code, before, after, rebuild.returncode == 0, survivors + stray
    )


def campaign(trials: int, root: str | None = None, seed: int = 1) -> list[Trial]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = root or os.path.join(tmp, "store")
        work = Path(tmp) / "work"
        prepare(store, work)
        return [trial(store, work, n, rng) for n in range(trials)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--root")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    results = campaign(args.trials, args.root, args.seed)
    bad = [t for t in results if not t.consistent]
    for t in bad:
        print(f"INCONSISTENT trial {t.number} ({t.workload}, killed after {t.delay:.2f}s): {t}")
    killed = sum(1 for t in results if t.exit == -signal.SIGKILL)
    print(f"{len(results)} trials ({killed} killed mid-operation), {len(bad)} inconsistencies")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
