"""Time ocibuild against buildah and ch-image on the same Dockerfiles, in one run.

Usage (as root): ``make bench`` or ``.venv/bin/python bench/bench.py [--only NAME,...]
[--skip-debian] [--work DIR]``.

For every workload and builder: a clean store with only the base image in it (set up
untimed), then a cold build (timed), then the same build again, fully cached (timed).
Peak RSS is the largest resident set of the builder process or any of its descendants
(``wait4`` rusage). Prints a Markdown table; ``--json FILE`` also saves the raw numbers.

Builders:
* ocibuild: ``ocibuild build --root STORE`` (its default runtime: crun when installed,
  else runc; kernel overlay), with ``--trace``;
* buildah 1.28: ``buildah bud --layers --isolation chroot --storage-driver overlay``;
* ch-image (charliecloud 0.31): ``ch-image --storage DIR build`` (its build cache on);
  bases come from ``ch-image import`` of the same root trees;
* BuildKit (the reference, v0.11.6, runc worker, overlayfs snapshotter) through
  ``buildctl``, when its daemon answers on ``BK_ADDR`` (started by
  ``/work/shared/tools/buildkit-up.sh`` when ``BK_GIT`` is set): cold = ``--no-cache`` with
  the image exported as an uncompressed OCI tar (``--output type=oci,...,
  compression=uncompressed``: BuildKit materialises layers only on export); cached = the
  same build again without export. Its bases are pushed (untimed) by ocibuild to a
  docker-registry on 127.0.0.1:5000 (reused when one answers there) and pulled into
  BuildKit's cache by an untimed build. Peak RSS is not measured for it (a daemon).

After the table: the cost of one RUN step under runc and under crun (trivial-20 built
again with ``--no-cache`` under each, means from ``--trace``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OCIBUILD = [str(REPO / ".venv" / "bin" / "python"), "-m", "ocibuild"]
_DROP = ("SOURCE_DATE_EPOCH", "OCIBUILD_ROOT", "PYTHONDONTWRITEBYTECODE")
ENV = {
    **{k: v for k, v in os.environ.items() if k not in _DROP},
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",  # system python
    "USER": os.environ.get("USER", "root"),
}


# -- workloads ------------------------------------------------------------------------------
@dataclass
class Workload:
    name: str
    base: str  # "busybox" or "debian"
    dockerfile: str
    prepare: Callable[[Path], None] | None = None
    description: str = ""


def _trivial() -> str:
    return "FROM BASE\n" + "".join(f"RUN echo step {i}\n" for i in range(20))


def _copy_context(ctx: Path) -> None:
    data = ctx / "data"
    for d in range(20):
        sub = data / f"d{d:02}"
        sub.mkdir(parents=True)
        for f in range(100):
            (sub / f"f{f:03}").write_bytes(os.urandom(100_000))  # 2,000 x 100 kB = 200 MB


BIG_RUN = (
    "RUN mkdir -p /big /small && dd if=/dev/urandom of=/big/random bs=1M count=300 2>/dev/null"
    " && i=0; while [ $i -lt 20000 ]; do echo $i > /small/f$i; i=$((i+1)); done\n"
)

WORKLOADS = [
    Workload("trivial-20", "busybox", _trivial(), description="20 trivial RUN steps"),
    Workload(
        "copy-200mb",
        "busybox",
        "FROM BASE\nCOPY data /data\n",
        _copy_context,
        "COPY of a 200 MB / 2,000-file context",
    ),
    Workload(
        "big-run",
        "busybox",
        "FROM BASE\n" + BIG_RUN + "RUN rm -rf /small/f1* /small/f2*\n",
        description="RUN writing 300 MB random + 20,000 files, then a RUN deleting 2/9",
    ),
    Workload(
        "multi-stage",
        "busybox",
        "FROM BASE AS a\nRUN mkdir /out && echo a > /out/a && sleep 1\n"
        "FROM BASE AS b\nRUN mkdir /out && echo b > /out/b && sleep 1\n"
        "FROM BASE\nCOPY --from=a /out/a /a\nCOPY --from=b /out/b /b\nRUN cat /a /b\n",
        description="3 stages, two independent (1 s each), COPY --from",
    ),
    Workload(
        "debian-apt",
        "debian",
        "FROM BASE\nRUN apt-get update -q && apt-get install -y -q --no-install-recommends "
        "make file && rm -rf /var/lib/apt/lists/*\nRUN make --version && file /bin/sh\n",
        description="debootstrap minbase bookworm + apt-get install make file",
    ),
]


# -- measuring ------------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    rss_mb: float
    ok: bool
    log: str = ""


def measure(argv: list[str], cwd: Path | None = None, log: Path | None = None) -> Run:
    started = time.monotonic()
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=out, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    seconds = time.monotonic() - started
    return Run(seconds, usage.ru_maxrss / 1024, proc.returncode == 0, str(log or ""))


class SetupFailed(Exception):
    pass


def run_quiet(argv: list[str], log: Path, cwd: Path | None = None) -> None:
    r = measure(argv, cwd, log)
    if not r.ok:
        raise SetupFailed(f"setup step failed: {' '.join(argv)} (see {log})")


# -- bases ----------------------------------------------------------------------------------
def busybox_tree(work: Path) -> Path:
    root = work / "base-busybox" / "rootfs"
    if (root / "bin" / "sh").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "bin").mkdir(parents=True)  # parents: the base context dir
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    subprocess.run(["/bin/busybox", "--install", "-s", str(root / "bin")], check=False)
    for link in (root / "bin").iterdir():  # --install links to the host path: fix them
        if link.is_symlink():
            link.unlink()
            link.symlink_to("busybox")
    for d in ("etc", "tmp", "root", "usr/bin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    return root


def debian_tree(work: Path) -> Path:
    root = work / "base-debian" / "rootfs"
    if (root / "usr" / "bin" / "apt-get").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    print("debootstrap --variant=minbase bookworm (once, about 30 s) ...", file=sys.stderr)
    subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(root)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return root


def nodev(tree: Path) -> Path:
    """A hard-linked copy of ``tree`` without device nodes and fifos: ch-image import copies
    a device's *content* (reading /dev/full or /dev/zero fills the disk)."""
    out = tree.parent / "rootfs-nodev"
    if out.exists():
        return out
    tmp = tree.parent / "rootfs-nodev.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(["cp", "-al", str(tree), str(tmp)], check=True)
    for dirpath, dirnames, filenames in os.walk(tmp):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                os.unlink(path)
    os.rename(tmp, out)
    return out


def base_context(tree: Path) -> Path:
    """The tree's parent, with a Dockerfile ``FROM scratch`` + ``COPY rootfs/ /``."""
    ctx = tree.parent
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY rootfs/ /\n")
    return ctx


# -- builders -------------------------------------------------------------------------------
class Builder:
    name = ""

    def __init__(self, work: Path) -> None:
        self.work = work / self.name
        self.store = self.work / "store"

    def available(self) -> bool:
        return True

    def clean(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)

    def setup_base(self, tree: Path, base_ctx: Path, tag: str) -> None:
        raise NotImplementedError

    def build(self, ctx: Path, tag: str, log: Path) -> Run:
        raise NotImplementedError


class Ocibuild(Builder):
    name = "ocibuild"

    def setup_base(self, tree: Path, base_ctx: Path, tag: str) -> None:
        run_quiet(
            [*OCIBUILD, "build", "--root", str(self.store), "-t", tag, str(base_ctx)],
            self.work / "setup.log",
        )

    def build(self, ctx: Path, tag: str, log: Path) -> Run:
        trace = log.with_suffix(".trace.json")
        argv = [*OCIBUILD, "build", "--root", str(self.store), "--trace", str(trace)]
        return measure([*argv, "-t", tag, str(ctx)], log=log)


class Buildah(Builder):
    name = "buildah"

    def available(self) -> bool:
        return shutil.which("buildah", path=ENV["PATH"]) is not None

    def _global(self) -> list[str]:
        return [
            "buildah",
            "--root",
            str(self.store),
            "--runroot",
            str(self.work / "run"),
            "--storage-driver",
            "overlay",
        ]

    def clean(self) -> None:
        if self.store.exists():  # unmount its overlay layers first
            subprocess.run([*self._global(), "rm", "--all"], env=ENV, capture_output=True)
            subprocess.run(["umount", "-R", str(self.store / "overlay")], capture_output=True)
            subprocess.run(
                [
                    "sh",
                    "-c",
                    f"grep -o '{self.work}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l",
                ],
                capture_output=True,
            )
        super().clean()

    def setup_base(self, tree: Path, base_ctx: Path, tag: str) -> None:
        run_quiet(
            [*self._global(), "bud", "--isolation", "chroot", "-t", tag, str(base_ctx)],
            self.work / "setup.log",
        )

    def build(self, ctx: Path, tag: str, log: Path) -> Run:
        return measure(
            [
                *self._global(),
                "bud",
                "--layers",
                "--isolation",
                "chroot",
                "--pull-never",
                "-t",
                tag,
                str(ctx),
            ],
            log=log,
        )


class ChImage(Builder):
    name = "ch-image"

    def available(self) -> bool:
        return shutil.which("ch-image", path=ENV["PATH"]) is not None

    def setup_base(self, tree: Path, base_ctx: Path, tag: str) -> None:
        run_quiet(
            ["ch-image", "--storage", str(self.store), "import", str(nodev(tree)), tag],
            self.work / "setup.log",
        )

    def build(self, ctx: Path, tag: str, log: Path) -> Run:
        return measure(
            [
                "ch-image",
                "--storage",
                str(self.store),
                "build",
                "--force",  # apt-get needs its unprivileged workarounds
                "-t",
                tag,
                "-f",
                str(ctx / "Dockerfile"),
                str(ctx),
            ],
            log=log,
        )


BK_ADDR = os.environ.get("BK_ADDR", "unix:///tmp/buildkit-ref/bk.sock")
BUILDCTL = os.environ.get("BUILDCTL", "/tmp/buildkit-ref/bk-bin/buildctl")
BK_UP = "/work/shared/tools/buildkit-up.sh"
BK_REGISTRY = "127.0.0.1:5000"  # buildkitd.toml (buildkit-up.sh) marks it plain http


def _buildkit_answers() -> bool:
    if not os.access(BUILDCTL, os.X_OK):
        return False
    probe = [BUILDCTL, "--addr", BK_ADDR, "debug", "workers"]
    return subprocess.run(probe, env=ENV, capture_output=True, timeout=30).returncode == 0


def buildkit_status() -> str | None:
    """None when BuildKit answers (started here if ``BK_GIT`` is set), else why not."""
    if _buildkit_answers():
        return None
    if not os.environ.get("BK_GIT"):
        return "BuildKit is not answering and BK_GIT is not set"
    if not os.path.exists(BK_UP):
        return f"BuildKit is not answering and {BK_UP} is missing"
    subprocess.run(["bash", BK_UP], env=ENV, check=False, stdout=subprocess.DEVNULL)
    return None if _buildkit_answers() else f"{BK_UP} did not bring BuildKit up"


def _registry_answers(host: str) -> bool:
    try:
        urllib.request.urlopen(f"http://{host}/v2/", timeout=2).close()
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


class BuildKit(Builder):
    """buildctl against the running buildkitd (see the module doc)."""

    name = "buildkit"
    _registry: subprocess.Popen[bytes] | None = None
    _pushed: set[str] = set()  # noqa: RUF012 - per run: bases already in the registry

    def available(self) -> bool:
        why = buildkit_status()
        if why:
            print(f"buildkit column skipped: {why}", file=sys.stderr, flush=True)
        return why is None

    def clean(self) -> None:  # BuildKit's cache is the daemon's: cold runs use --no-cache
        shutil.rmtree(self.work / "out", ignore_errors=True)
        self.work.mkdir(parents=True, exist_ok=True)

    def _ensure_registry(self) -> None:
        if _registry_answers(BK_REGISTRY):
            return
        data = self.work / "registry"
        data.mkdir(parents=True, exist_ok=True)
        config = data / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {data / 'data'}\n"
            f"http:\n  addr: {BK_REGISTRY}\n"
        )
        log = open(data / "registry.log", "ab")  # noqa: SIM115 - kept by the process
        BuildKit._registry = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=log, stderr=log
        )
        log.close()
        for _ in range(100):
            if _registry_answers(BK_REGISTRY):
                return
            time.sleep(0.1)
        raise SetupFailed(f"no registry on {BK_REGISTRY} (see {data / 'registry.log'})")

    @classmethod
    def stop_registry(cls) -> None:
        if cls._registry is not None:
            cls._registry.terminate()
            cls._registry.wait()
            cls._registry = None

    def base_ref(self, tag: str) -> str:
        return f"{BK_REGISTRY}/ocibuild-bench/{tag}:latest"

    def setup_base(self, tree: Path, base_ctx: Path, tag: str) -> None:
        self._ensure_registry()
        ref = self.base_ref(tag)
        if ref not in BuildKit._pushed:
            store = self.work / "ocibuild-store"
            log = self.work / "setup.log"
            run_quiet([*OCIBUILD, "build", "--root", str(store), "-t", tag, str(base_ctx)], log)
            run_quiet([*OCIBUILD, "push", "-q", "--root", str(store), tag, ref], log)
            BuildKit._pushed.add(ref)
        pull = self.work / "pull-base"
        pull.mkdir(parents=True, exist_ok=True)
        (pull / "Dockerfile").write_text(f"FROM {ref}\n")
        run_quiet(self._argv(pull, pull), self.work / "setup.log")  # into BuildKit's cache

    def _argv(self, ctx: Path, dockerfile_dir: Path) -> list[str]:
        return [
            *(BUILDCTL, "--addr", BK_ADDR, "build", "--frontend", "dockerfile.v0"),
            *("--local", f"context={ctx}", "--local", f"dockerfile={dockerfile_dir}"),
        ]

    def build(self, ctx: Path, tag: str, log: Path) -> Run:
        dockerfile = self.work / "df" / ctx.name
        dockerfile.mkdir(parents=True, exist_ok=True)
        text = (ctx / "Dockerfile").read_text()
        text = re.sub(
            r"^FROM (bench-[a-z]+)", lambda m: f"FROM {self.base_ref(m[1])}", text, flags=re.M
        )
        (dockerfile / "Dockerfile").write_text(text)
        out = self.work / "out"
        argv = self._argv(ctx, dockerfile)
        if not out.exists():  # the first build of a workload: cold, exported
            out.mkdir(parents=True)
            dest = out / f"{tag}.tar"
            argv += ["--no-cache", "--output", f"type=oci,dest={dest},compression=uncompressed"]
        run = measure(argv, log=log)
        run.rss_mb = float("nan")  # the work is in the daemon
        return run


def run_step_costs(
    store: Path, ctx: Path, logs: Path, rounds: int = 3
) -> dict[str, dict[str, float]]:
    """Median over ``rounds`` (runtimes interleaved) of the mean seconds of one ``RUN echo``
    step, whole step and inside the runtime, from ``--trace`` of trivial-20 rebuilt with
    ``--no-cache`` under each runtime."""
    runtimes = [r for r in ("runc", "crun") if shutil.which(r, path=ENV["PATH"])]
    samples: dict[str, list[tuple[float, float, float]]] = {r: [] for r in runtimes}
    for n in range(rounds):
        for runtime in runtimes:
            trace = logs / f"ocibuild-trivial-20-{runtime}-{n}.trace.json"
            trace.unlink(missing_ok=True)
            argv = [*OCIBUILD, "build", "--root", str(store), "--runtime", runtime, "--no-cache"]
            run = measure(
                [*argv, "--trace", str(trace), "-t", "steps", str(ctx)],
                log=logs / f"ocibuild-trivial-20-{runtime}.log",
            )
            if not run.ok:
                continue
            records = [json.loads(x) for x in trace.read_text().splitlines()]
            steps = [r for r in records if str(r.get("instruction", "")).startswith("RUN")]
            if steps:
                step = sum(float(r["seconds"]) for r in steps) / len(steps)
                inside = sum(float(r["runtime_seconds"]) for r in steps) / len(steps)
                samples[runtime].append((run.seconds, step * 1000, inside * 1000))
    out: dict[str, dict[str, float]] = {}
    for runtime, got in samples.items():
        if got:
            mid = sorted(got, key=lambda t: t[1])[len(got) // 2]
            keys = ("build_seconds", "step_ms", "runtime_ms")
            out[runtime] = dict(zip(keys, mid, strict=True)) | {"rounds": len(got)}
    return out


# -- the run --------------------------------------------------------------------------------
@dataclass
class Row:
    workload: str
    results: dict[str, dict[str, Run]] = field(default_factory=dict)  # builder -> phase -> run


def tar_sha256_seconds(tree: Path) -> float:
    started = time.monotonic()
    subprocess.run(f"tar -C {tree} -cf - . | sha256sum > /dev/null", shell=True, check=True)
    return time.monotonic() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/var/tmp/ocibuild-bench")
    ap.add_argument("--only", help="comma-separated workload names")
    ap.add_argument("--builders", default="ocibuild,buildah,ch-image,buildkit")
    ap.add_argument("--skip-debian", action="store_true")
    ap.add_argument("--json", help="also write the raw numbers here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("the benchmark needs root (all three builders run as root here)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    # As an installed package has it (pip compiles at install time): up-to-date bytecode,
    # so no timed run pays for compiling a module edited since the last run.
    subprocess.run(
        [OCIBUILD[0], "-m", "compileall", "-q", str(REPO / "ocibuild")],
        env=ENV,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wanted = set(args.only.split(",")) if args.only else None
    loads = [w for w in WORKLOADS if (wanted is None or w.name in wanted)]
    if args.skip_debian:
        loads = [w for w in loads if w.base != "debian"]
    classes: dict[str, type[Builder]] = {
        "ocibuild": Ocibuild,
        "buildah": Buildah,
        "ch-image": ChImage,
        "buildkit": BuildKit,
    }
    builders = [classes[n](work) for n in args.builders.split(",")]
    builders = [b for b in builders if b.available()]
    trees = {"busybox": busybox_tree(work)}
    if any(w.base == "debian" for w in loads):
        trees["debian"] = debian_tree(work)
    rows: list[Row] = []
    extra: dict[str, Any] = {}
    for load in loads:
        row = Row(load.name)
        ctx = work / "ctx" / load.name
        if not ctx.exists():
            ctx.mkdir(parents=True)
            if load.prepare:
                load.prepare(ctx)
        tag = f"bench-{load.base}"
        (ctx / "Dockerfile").write_text(load.dockerfile.replace("BASE", tag))
        for b in builders:
            b.clean()
            tree = trees[load.base]
            try:
                b.setup_base(tree, base_context(tree), tag)
            except SetupFailed as exc:
                print(f"{load.name:12} {b.name:9} {exc}", file=sys.stderr, flush=True)
                continue
            logs = work / "logs"
            logs.mkdir(exist_ok=True)
            cold = b.build(ctx, f"out-{load.name}", logs / f"{b.name}-{load.name}-cold.log")
            cached = b.build(ctx, f"out-{load.name}", logs / f"{b.name}-{load.name}-cached.log")
            row.results[b.name] = {"cold": cold, "cached": cached}
            print(
                f"{load.name:12} {b.name:9} cold {cold.seconds:7.2f}s"
                f"{'' if cold.ok else ' FAILED'}  cached {cached.seconds:6.2f}s"
                f"{'' if cached.ok else ' FAILED'}  rss {max(cold.rss_mb, cached.rss_mb):6.0f} MB",
                file=sys.stderr,
                flush=True,
            )
            if b.name == "ocibuild" and load.name == "big-run":
                extra["big-run"] = big_layer_check(b, logs / f"{b.name}-{load.name}-cold.log")
            if b.name == "ocibuild" and load.name == "trivial-20":
                extra["run-steps"] = run_step_costs(b.store, ctx, logs)
        rows.append(row)
    BuildKit.stop_registry()
    print(table(rows, [b.name for b in builders], extra))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    r.workload: {
                        b: {p: vars(run) for p, run in ph.items()} for b, ph in r.results.items()
                    }
                    for r in rows
                }
                | {"extra": extra},
                indent=2,
            )
        )
    return 0


def big_layer_check(b: Builder, log: Path) -> dict[str, float]:
    """Commit time of the 300 MB step (trace) against tar c | sha256sum of its layer dir."""
    records = [json.loads(x) for x in log.with_suffix(".trace.json").read_text().splitlines()]
    step = next(r for r in records if r["instruction"].startswith("RUN mkdir -p /big"))
    commit = step["diff_seconds"] + step["hash_seconds"] + step["write_seconds"]
    own = commit + step["prepare_seconds"] + step["cleanup_seconds"]
    layer = b.store / "layers" / step["diff_id"].split(":", 1)[1] / "diff"
    tar = min(tar_sha256_seconds(layer) for _ in range(2))
    return {
        "commit_seconds": commit,
        "tar_sha256_seconds": tar,
        "ratio": commit / tar,
        "layer_bytes": step["layer_bytes"],
        "step_seconds": step["seconds"],
        "runtime_seconds": step["runtime_seconds"],
        "own_seconds": own,  # ocibuild's share of the step: prepare, diff, hash, write, cleanup
        "own_share": own / step["seconds"],
    }


def table(rows: list[Row], names: list[str], extra: dict[str, Any]) -> str:
    head = ["workload", "phase", *[f"{n} s" for n in names]]
    others = [n for n in names if n != "ocibuild"]
    head += [f"ocibuild/{n}" for n in others] + [f"peak RSS MB ({'/'.join(names)})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        for phase in ("cold", "cached"):
            runs = [row.results.get(n, {}).get(phase) for n in names]
            cells = [row.workload, phase]
            cells += [
                ("FAILED " if r and not r.ok else "") + (f"{r.seconds:.2f}" if r else "-")
                for r in runs
            ]
            mine = row.results.get("ocibuild", {}).get(phase)
            for n in others:
                theirs = row.results.get(n, {}).get(phase)
                ok = mine and theirs and theirs.seconds > 0
                cells.append(f"{mine.seconds / theirs.seconds:.2f}" if ok else "-")  # type: ignore[union-attr]
            cells.append(
                " / ".join(f"{r.rss_mb:.0f}" if r and r.rss_mb == r.rss_mb else "-" for r in runs)
            )
            lines.append("| " + " | ".join(cells) + " |")
    out = "\n".join(lines)
    if "buildkit" in names:
        out += (
            "\n\nbuildkit: cold = `--no-cache` + export as an uncompressed OCI tar"
            " (`--output type=oci,compression=uncompressed`); cached = no export; its RSS is"
            " the daemon's, not measured."
        )
    steps = extra.get("run-steps")
    if steps:
        out += "\n\nOne RUN step (trivial-20 with --no-cache; median of interleaved rounds):"
        out += (
            "\n\n| runtime | trivial-20 --no-cache s | ms per RUN step | ms in the runtime"
            " | ms of ocibuild's own |"
        )
        out += "\n|---|---|---|---|---|"
        for runtime, c in steps.items():
            out += (
                f"\n| {runtime} | {c['build_seconds']:.2f} | {c['step_ms']:.1f}"
                f" | {c['runtime_ms']:.1f} | {c['step_ms'] - c['runtime_ms']:.1f} |"
            )
    big = extra.get("big-run")
    if big:
        out += (
            f"\n\nbig-run layer ({big['layer_bytes'] / 1e6:.0f} MB): ocibuild commit (tar + "
            f"sha256 + store) {big['commit_seconds']:.2f} s vs `tar c | sha256sum` "
            f"{big['tar_sha256_seconds']:.2f} s = {big['ratio']:.2f}x; ocibuild's own share of"
            f" the step (prepare + diff + hash + write + cleanup, --trace) {big['own_seconds']:.2f}"
            f" s of {big['step_seconds']:.2f} s = {big['own_share']:.0%} (the rest: the RUN's"
            f" own process, {big['runtime_seconds']:.2f} s)"
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
