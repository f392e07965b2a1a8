"""How ocibuild's cost grows with the work: four scale series, each with its numbers (JSON
+ CSV), a PNG plot and a fitted check that the curve is linear or better.

Usage (as root): ``make bench-scale`` or ``.venv/bin/python bench/scale.py
[--series runs,context,layer,stages] [--full] [--no-buildkit] [--out bench/results]``.

Series (default sizes keep the whole run at about 10 minutes on the loaded 2-core VM;
``--full`` adds the largest sizes of issue 16: 500 RUN steps, 200k files, 5 GB):

* ``runs``: a Dockerfile of N trivial ``RUN echo`` steps on a busybox base, built cold
  (store holding the base only) and fully cached; BuildKit as a column for N <= 100
  (``--full``: <= 200): cold = ``--no-cache`` + export as an uncompressed OCI tar,
  cached = the same build again without export. Default N = 10, 25, 50, 100, 200
  (``--full``: and 500).
* ``context``: ``COPY data /data`` of a context of N files of 1 kB (1,000 a directory),
  cold and cached (the rebuild stats the context through the stat cache), with the
  COPY step's own copy time from ``--trace`` and ``cp -a`` + ``tar c | sha256sum`` of
  the same tree, run right after, as the floor. Default N = 1k, 5k, 20k, 50k, 100k
  (``--full``: and 200k).
* ``layer``: one RUN writing one file of N MB; the step's commit (tar + sha256 + store,
  from the trace) against ``tar c | sha256sum`` of the same layer dir, and the build's
  peak RSS (the largest resident set of ocibuild or any descendant, ``wait4``). Default
  N = 300, 1000, 2500 MB (``--full``: and 5000 MB).
* ``stages``: K independent stages (each ``RUN sleep 1``) then one stage copying a
  file from each; default K = 1, 2, 4, 8, with BuildKit as a column.

The check: a least-squares fit of log(time) against log(size) over the series; the
curve passes when the slope is at most 1.1 (linear or better). For ``runs`` and
``context`` the cold series is fitted; for ``layer`` the commit time; for ``stages``
the build time against K.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench as B  # noqa: E402 - bench/bench.py: builders, bases, measure

SLOPE_MAX = 1.1
DEFAULT = {
    "runs": [10, 25, 50, 100, 200],
    "context": [1000, 5000, 20000, 50000, 100000],
    "layer": [300, 1000, 2500],
    "stages": [1, 2, 4, 8],
}
FULL = {
    "runs": [10, 25, 50, 100, 200, 500],
    "context": [1000, 5000, 20000, 50000, 100000, 200000],
    "layer": [300, 1000, 2500, 5000],
    "stages": [1, 2, 4, 8],
}
BK_RUNS_MAX = {False: 100, True: 200}
TAG = "bench-busybox"


def loglog_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) on log(x)."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(max(y, 1e-6)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    num = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True))
    den = sum((a - mx) ** 2 for a in lx)
    return num / den if den else 0.0


def trace_records(log: Path) -> list[dict[str, Any]]:
    path = log.with_suffix(".trace.json")
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def timed_shell(cmd: str) -> float:
    started = time.monotonic()
    subprocess.run(cmd, shell=True, check=True, env=B.ENV)
    return time.monotonic() - started


class Series:
    def __init__(self, work: Path, tree: Path, bk: B.BuildKit | None) -> None:
        self.work = work
        self.tree = tree
        self.bk = bk
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def fresh(self) -> B.Ocibuild:
        oci = B.Ocibuild(self.work)
        oci.clean()
        oci.setup_base(self.tree, B.base_context(self.tree), TAG)
        return oci

    def context(self, name: str, dockerfile: str) -> Path:
        ctx = self.work / "ctx" / name
        ctx.mkdir(parents=True, exist_ok=True)
        (ctx / "Dockerfile").write_text(dockerfile)
        return ctx

    def buildkit(self, ctx: Path, name: str) -> dict[str, float]:
        assert self.bk is not None
        self.bk.clean()  # no out/ dir: the next build is the cold, exported one
        cold = self.bk.build(ctx, name, self.logs / f"bk-{name}-cold.log")
        cached = self.bk.build(ctx, name, self.logs / f"bk-{name}-cached.log")
        return {"bk_cold_s": cold.seconds, "bk_cached_s": cached.seconds}

    # -- the series -----------------------------------------------------------------------
    def runs(self, n: int, with_bk: bool) -> dict[str, Any]:
        df = f"FROM {TAG}\n" + "".join(f"RUN echo step {i}\n" for i in range(n))
        ctx = self.context(f"runs-{n}", df)
        oci = self.fresh()
        cold = oci.build(ctx, "out", self.logs / f"runs-{n}-cold.log")
        cached = oci.build(ctx, "out", self.logs / f"runs-{n}-cached.log")
        row: dict[str, Any] = {"n": n, "cold_s": cold.seconds, "cached_s": cached.seconds}
        row["ok"] = cold.ok and cached.ok
        row["rss_mb"] = max(cold.rss_mb, cached.rss_mb)
        if with_bk and self.bk is not None:
            row |= self.buildkit(ctx, f"runs-{n}")
        return row

    def context_files(self, n: int) -> dict[str, Any]:
        ctx = self.work / "ctx" / f"files-{n}"
        if not (ctx / "data").exists():
            tmp = ctx / "data.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            for i in range(n):
                d = tmp / f"d{i // 1000:03}"
                if i % 1000 == 0:
                    d.mkdir(parents=True)
                (d / f"f{i % 1000:04}").write_bytes(os.urandom(1024))
            tmp.rename(ctx / "data")
        self.context(f"files-{n}", f"FROM {TAG}\nCOPY data /data\n")
        oci = self.fresh()
        cold = oci.build(ctx, "out", self.logs / f"files-{n}-cold.log")
        cached = oci.build(ctx, "out", self.logs / f"files-{n}-cached.log")
        step = trace_records(self.logs / f"files-{n}-cold.log")[-1]
        out = self.work / "cp-out"
        shutil.rmtree(out, ignore_errors=True)
        cp = timed_shell(f"cp -a {ctx / 'data'} {out}")
        shutil.rmtree(out, ignore_errors=True)
        tar = timed_shell(f"tar c -C {ctx} data | sha256sum >/dev/null")
        return {
            "n": n,
            "cold_s": cold.seconds,
            "cached_s": cached.seconds,
            "ok": cold.ok and cached.ok,
            "copy_s": step.get("copy_seconds", float("nan")),
            "key_s": step["key_seconds"],
            "commit_s": step["diff_seconds"] + step["hash_seconds"] + step["write_seconds"],
            "cp_a_s": cp,
            "tar_sha256_s": tar,
            "copy_vs_floor": step.get("copy_seconds", float("nan")) / (cp + tar),
            "rss_mb": max(cold.rss_mb, cached.rss_mb),
        }

    def layer(self, mb: int) -> dict[str, Any]:
        df = f"FROM {TAG}\nRUN dd if=/dev/zero of=/big bs=1M count={mb} 2>/dev/null\n"
        ctx = self.context(f"layer-{mb}", df)
        oci = self.fresh()
        run = oci.build(ctx, "out", self.logs / f"layer-{mb}-cold.log")
        step = trace_records(self.logs / f"layer-{mb}-cold.log")[-1]
        commit = step["diff_seconds"] + step["hash_seconds"] + step["write_seconds"]
        layer = oci.store / "layers" / step["diff_id"].split(":", 1)[1] / "diff"
        tar = B.tar_sha256_seconds(layer)
        row = {
            "mb": mb,
            "build_s": run.seconds,
            "ok": run.ok,
            "commit_s": commit,
            "tar_sha256_s": tar,
            "commit_vs_tar": commit / tar,
            "mb_per_s": step["layer_bytes"] / 1e6 / commit,
            "tar_mb_per_s": step["layer_bytes"] / 1e6 / tar,
            "rss_mb": run.rss_mb,
        }
        shutil.rmtree(oci.work, ignore_errors=True)  # GBs of disk
        return row

    def stages(self, k: int, with_bk: bool) -> dict[str, Any]:
        parts = [
            f"FROM {TAG} AS s{i}\nRUN mkdir /out && echo {i} > /out/f{i} && sleep 1\n"
            for i in range(k)
        ]
        final = f"FROM {TAG}\n" + "".join(f"COPY --from=s{i} /out/f{i} /f{i}\n" for i in range(k))
        ctx = self.context(f"stages-{k}", "".join(parts) + final)
        oci = self.fresh()
        cold = oci.build(ctx, "out", self.logs / f"stages-{k}-cold.log")
        cached = oci.build(ctx, "out", self.logs / f"stages-{k}-cached.log")
        row: dict[str, Any] = {"k": k, "cold_s": cold.seconds, "cached_s": cached.seconds}
        row["ok"] = cold.ok and cached.ok
        if with_bk and self.bk is not None:
            row |= self.buildkit(ctx, f"stages-{k}")
        return row


# -- output ------------------------------------------------------------------------------
def _import_pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(name: str, rows: list[dict[str, Any]], x: str, ys: list[str], out: Path) -> None:
    plt = _import_pyplot()

    fig, ax = plt.subplots(figsize=(6, 4))
    for y in ys:
        pts = [(r[x], r[y]) for r in rows if y in r and r[y] == r[y]]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=y)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel("seconds" if not ys[0].endswith("mb") else "MB")
    ax.set_title(f"ocibuild scale: {name} (log-log; loaded 2-core VM)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"scale-{name}.png", dpi=90)
    plt.close(fig)


def write(name: str, rows: list[dict[str, Any]], out: Path) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(out / f"scale-{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})


PLOTS = {  # series: (x, plotted columns, fitted column)
    "runs": ("n", ["cold_s", "cached_s", "bk_cold_s", "bk_cached_s"], "cold_s"),
    "context": ("n", ["cold_s", "cached_s", "copy_s", "cp_a_s", "tar_sha256_s"], "cold_s"),
    "layer": ("mb", ["commit_s", "tar_sha256_s", "build_s"], "commit_s"),
    "stages": ("k", ["cold_s", "cached_s", "bk_cold_s", "bk_cached_s"], "cold_s"),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/var/tmp/ocibuild-bench-scale")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--series", default="runs,context,layer,stages")
    ap.add_argument("--full", action="store_true", help="the sizes of issue 16 (about 1 h)")
    ap.add_argument("--no-buildkit", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("the scale series needs root")
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [B.OCIBUILD[0], "-m", "compileall", "-q", str(B.REPO / "ocibuild")],
        env=B.ENV,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tree = B.busybox_tree(work)
    bk: B.BuildKit | None = None
    if not args.no_buildkit:
        candidate = B.BuildKit(work)
        if candidate.available():
            candidate.clean()
            candidate.setup_base(tree, B.base_context(tree), TAG)
            bk = candidate
    s = Series(work, tree, bk)
    sizes = FULL if args.full else DEFAULT
    summary: dict[str, Any] = {"full": args.full, "load_before": os.getloadavg()}
    for name in args.series.split(","):
        rows: list[dict[str, Any]] = []
        for n in sizes[name]:
            started = time.monotonic()
            if name == "runs":
                row = s.runs(n, n <= BK_RUNS_MAX[args.full])
            elif name == "context":
                row = s.context_files(n)
            elif name == "layer":
                row = s.layer(n)
            else:
                row = s.stages(n, True)
            row["load"] = round(os.getloadavg()[0], 2)
            rows.append(row)
            shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
            print(f"{name} {shown} ({time.monotonic() - started:.0f} s)", flush=True)
        x, ys, fitted = PLOTS[name]
        slope = loglog_slope([r[x] for r in rows], [r[fitted] for r in rows])
        summary[name] = {
            "rows": rows,
            "fitted": fitted,
            "loglog_slope": round(slope, 3),
            "linear_or_better": slope <= SLOPE_MAX,
        }
        if name == "layer":
            summary[name]["peak_rss_mb"] = max(r["rss_mb"] for r in rows)
        write(name, rows, out)
        plot(name, rows, x, ys, out)
        print(
            f"{name}: log-log slope of {fitted} = {slope:.2f} (<= {SLOPE_MAX}: "
            f"{'linear or better' if slope <= SLOPE_MAX else 'WORSE than linear'})",
            flush=True,
        )
    summary["load_after"] = os.getloadavg()
    summary["children_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    B.BuildKit.stop_registry()
    (out / "scale.json").write_text(json.dumps(summary, indent=2))
    failed = [n for n in args.series.split(",") if not summary[n]["linear_or_better"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
