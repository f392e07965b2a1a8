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


def prepare_registry(root: str, work: Path) -> tuple[object, str]:
    """A docker-registry on 127.0.0.1 with ``kill/big:1`` (a 40 MB random layer) in it."""
    from tests.registry.server import Registry

    reg_dir = work / "registry"
    reg_dir.mkdir()
    registry = Registry(reg_dir, htpasswd=False)
    registry.start()
    big = work / "bigctx"
    big.mkdir()
    (big / "noise").write_bytes(os.urandom(40 << 20))
    (big / "Dockerfile").write_text("FROM base:kill\nCOPY noise /noise\n")
    for cmd in (
        ("build", "-t", "kill/big:1", str(big)),
        ("push", "-q", "kill/big:1", f"{registry.host}/kill/big:1"),
    ):
        res = ocibuild(root, *cmd)
        if res.returncode != 0:
            raise SystemExit(res.stderr)
    return registry, registry.host


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


def command_for(
    kind: str, root: str, work: Path, number: int, marker: str, host: str | None
) -> list[str]:
    """The operation a trial kills, set up so that it has work to do."""
    if kind == "pull":
        assert host is not None
        ocibuild(root, "rmi", f"{host}/kill/big:1")
        ocibuild(root, "prune", "--all")  # its layers are gone: the pull downloads them
        return ["pull", "-q", f"{host}/kill/big:1"]
    if kind == "push":
        assert host is not None
        # a new repository each time, recompressed (zstd), so there is work to kill
        return ["push", "-q", "--compression", "zstd", "kill/big:1", f"{host}/kill/p{number}:1"]
    ctx = work / "ctx"
    (ctx / "Dockerfile").write_text(f"# {marker}\n" + WORKLOADS[kind].format(n=marker))
    return ["build", "-t", f"kill:{number % 5}", str(ctx)]


def measure(root: str, work: Path, host: str | None) -> dict[str, float]:
    """How long each operation takes when left alone: trials kill at a random point
    inside that span, so (nearly) every kill lands mid-operation."""
    kinds = sorted(WORKLOADS) + (["pull", "push"] if host else [])
    spans = {}
    for n, kind in enumerate(kinds):
        argv = command_for(kind, root, work, 10_000 + n, f"measure-{n}", host)
        started = time.monotonic()
        ocibuild(root, *argv)
        spans[kind] = time.monotonic() - started
    return spans


def trial(
    root: str,
    work: Path,
    number: int,
    rng: random.Random,
    host: str | None = None,
    spans: dict[str, float] | None = None,
) -> Trial:
    kinds = sorted(WORKLOADS) + (["pull", "pull", "push", "push"] if host else [])
    name = rng.choice(kinds)
    marker = f"killtrial-{os.getpid()}-{number}"
    argv = command_for(name, root, work, number, marker, host)
    span = (spans or {}).get(name, 1.0)
    delay = max(0.05, rng.uniform(0.05, 0.95) * span)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocibuild", *argv],
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
    again = argv if name in ("pull", "push") else ["build", "-q", str(work / "ctx")]
    rebuild = ocibuild(root, *again)
    return Trial(
        number, name, delay, code, before, after, rebuild.returncode == 0, survivors + stray
    )


def campaign(
    trials: int, root: str | None = None, seed: int = 1, registry: bool = False
) -> list[Trial]:
    """``trials`` kills of builds (and, with ``registry``, of pulls and pushes)."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = root or os.path.join(tmp, "store")
        work = Path(tmp) / "work"
        prepare(store, work)
        server, host = prepare_registry(store, work) if registry else (None, None)
        spans = measure(store, work, host)
        try:
            return [trial(store, work, n, rng, host, spans) for n in range(trials)]
        finally:
            if server is not None:
                server.stop()  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--root")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-registry", action="store_true", help="builds only")
    args = parser.parse_args()
    results = campaign(args.trials, args.root, args.seed, registry=not args.no_registry)
    bad = [t for t in results if not t.consistent]
    for t in bad:
        print(f"INCONSISTENT trial {t.number} ({t.workload}, killed after {t.delay:.2f}s): {t}")
    killed = sum(1 for t in results if t.exit == -signal.SIGKILL)
    kinds: dict[str, int] = {}
    for t in results:
        kinds[t.workload] = kinds.get(t.workload, 0) + 1
    print("trials by operation: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    print(f"{len(results)} trials ({killed} killed mid-operation), {len(bad)} inconsistencies")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
