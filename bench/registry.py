"""Pull and push of a ~200 MB Debian image: ocibuild against ``skopeo copy``.

Usage (as root): ``.venv/bin/python bench/registry.py [--work DIR] [--rounds N]
[--baseline CMD]``.

Set-up (untimed): ``debootstrap --variant=minbase bookworm`` once (cached in WORK), an
image built from it by ocibuild (``FROM scratch`` + ``COPY rootfs/ /``), two OCI layout
exports of that image as skopeo's sources (one with gzip layers, one with uncompressed
layers), and one registry holding the image as the source of every pull.

Timed, every transfer ``--rounds`` times (default 5), interleaved (the order rotates each
round), each push into a fresh ``docker-registry`` on 127.0.0.1 (nothing is ever already
there); the table gives the median, min and max, the ratios use medians:

* push of the built image, the same work on both sides (compression + upload):
  ``ocibuild push`` (the layer's tar regenerated from its directory, gzip, upload, one
  streaming pass; its recorded compressed digest forgotten before every round) vs
  ``skopeo copy oci:UNCOMPRESSED docker://`` (containers/image gzips uncompressed layers
  for a registry; checked below: the layer it pushed is ``+gzip`` and starts ``1f 8b``);
* upload only: ``ocibuild push`` of the image it pulled (original blobs kept) vs
  ``skopeo copy oci:GZIP docker://`` (blobs already compressed). The built-image push
  against this row is the old, unfair, comparison (printed too);
* pull: ``ocibuild pull`` into an empty store (download, verify, unpack into layer dirs)
  vs ``skopeo copy docker:// oci:DIR`` (download, verify; no unpacking), and vs that
  plus ``tar -xzf`` of its layers (the unpacking ocibuild also does).

``--baseline CMD`` (e.g. a script running an older checkout's ``python -m ocibuild``)
adds its push of the built image as one more interleaved row.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.registry.server import Registry  # noqa: E402

OCIBUILD = [str(REPO / ".venv" / "bin" / "python"), "-m", "ocibuild"]
IMAGE = "bench-debian:1"

PUSH_BUILT = "push ocibuild, built image (tar + gzip + upload)"
PUSH_BASELINE = "push baseline ocibuild, built image (tar + gzip + upload)"
PUSH_PULLED = "push ocibuild, pulled image (upload only)"
SKOPEO_RAW = "push `skopeo copy oci:UNCOMPRESSED docker://` (gzip + upload)"
SKOPEO_GZ = "push `skopeo copy oci:GZIP docker://` (upload only)"
PULL = "pull ocibuild (download + verify + unpack)"
SKOPEO_PULL = "pull `skopeo copy docker:// oci:` (no unpacking)"
UNPACK = "unpack of skopeo's layers (`tar -xzf`)"


def run(cmd: list[str], **kw: object) -> float:
    started = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.monotonic() - started


def _layout_manifest(layout: Path) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    data: dict[str, Any] = json.loads((layout / "blobs" / "sha256" / digest).read_text())
    return data


def fresh_registry(work: Path, name: str) -> Registry:
    path = work / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    reg = Registry(path, htpasswd=False)
    reg.start()
    return reg


def pushed_layers(host: str, repo: str, tag: str) -> list[tuple[str, str]]:
    """(media type, first two bytes in hex) of each layer of ``repo:tag`` in a registry."""
    accept = "application/vnd.oci.image.manifest.v1+json, "
    accept += "application/vnd.docker.distribution.manifest.v2+json"
    req = urllib.request.Request(
        f"http://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": accept}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        manifest = json.load(resp)
    out = []
    for layer in manifest["layers"]:
        blob = urllib.request.Request(
            f"http://{host}/v2/{repo}/blobs/{layer['digest']}", headers={"Range": "bytes=0-1"}
        )
        with urllib.request.urlopen(blob, timeout=30) as resp:
            out.append((str(layer["mediaType"]), resp.read(2).hex()))
    return out


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def setup(work: Path, env: dict[str, str]) -> tuple[Path, Path]:
    rootfs = work / "ctx" / "rootfs"
    if not (rootfs / "etc" / "debian_version").exists():
        print("debootstrap --variant=minbase bookworm (once) ...", file=sys.stderr)
        shutil.rmtree(rootfs, ignore_errors=True)
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(rootfs)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    (work / "ctx" / "Dockerfile").write_text('FROM scratch\nCOPY rootfs/ /\nCMD ["bash"]\n')
    shutil.rmtree(env["OCIBUILD_ROOT"], ignore_errors=True)
    layouts = (work / "layout-gzip", work / "layout-uncompressed")
    print("building the image and its two layouts (untimed) ...", file=sys.stderr)
    for layout, compression in zip(layouts, ("gzip", "none"), strict=True):
        shutil.rmtree(layout, ignore_errors=True)
        subprocess.run(
            [
                *OCIBUILD,
                "build",
                "-q",
                "-t",
                IMAGE,
                "--compression",
                compression,
                "--output",
                f"type=oci,dest={layout}",
                str(work / "ctx"),
            ],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    return layouts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/var/tmp/ocibuild-registry-bench")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", help="command of another ocibuild to time its push too")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    store = work / "store"
    env = {**os.environ, "OCIBUILD_ROOT": str(store)}
    env.pop("SOURCE_DATE_EPOCH", None)
    gz_layout, raw_layout = setup(work, env)
    size = sum(f.stat().st_size for f in (gz_layout / "blobs" / "sha256").iterdir())
    raw_size = sum(f.stat().st_size for f in (raw_layout / "blobs" / "sha256").iterdir())
    skopeo = shutil.which("skopeo") or "skopeo"
    meta = store / "registry" / "meta.json"
    pull_store = work / "pull-store"
    times: dict[str, list[float]] = {}

    source = fresh_registry(work, "reg-source")  # what every pull reads
    try:
        src = f"{source.host}/bench/debian:1"
        subprocess.run(
            [*OCIBUILD, "push", "-q", IMAGE, src], check=True, env=env, stdout=subprocess.DEVNULL
        )
        shutil.rmtree(pull_store, ignore_errors=True)
        subprocess.run(
            [*OCIBUILD, "pull", "-q", "--root", str(pull_store), src],
            check=True,
            stdout=subprocess.DEVNULL,
        )

        def push(cmd: list[str], forget: bool = False, scheme: str = "") -> float:
            if forget:  # a freshly built image: no compressed digest known yet
                meta.unlink(missing_ok=True)
            reg = fresh_registry(work, "reg-push")
            try:
                return run([*cmd, f"{scheme}{reg.host}/bench/debian:1"], env=env)
            finally:
                reg.stop()

        def skopeo_push(layout: Path) -> float:
            cmd = [skopeo, "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:1"]
            return push(cmd, scheme="docker://")

        def ocibuild_pull() -> float:
            target = work / "pull-timed"
            shutil.rmtree(target, ignore_errors=True)
            return run([*OCIBUILD, "pull", "-q", "--root", str(target), src], env=env)

        def skopeo_pull() -> float:
            out = work / "skopeo-pulled"
            shutil.rmtree(out, ignore_errors=True)
            secs = run(
                [skopeo, "copy", "-q", "--src-tls-verify=false", f"docker://{src}", f"oci:{out}:1"]
            )
            unpacked = work / "skopeo-unpacked"
            shutil.rmtree(unpacked, ignore_errors=True)
            unpacked.mkdir()
            started = time.monotonic()
            for layer in _layout_manifest(out)["layers"]:
                blob = out / "blobs" / "sha256" / layer["digest"].split(":", 1)[1]
                subprocess.run(["tar", "-xzf", str(blob), "-C", str(unpacked)], check=True)
            times.setdefault(UNPACK, []).append(time.monotonic() - started)
            shutil.rmtree(unpacked, ignore_errors=True)
            return secs

        jobs: list[tuple[str, Callable[[], float]]] = [
            (PUSH_BUILT, lambda: push([*OCIBUILD, "push", "-q", IMAGE], forget=True)),
            (SKOPEO_RAW, lambda: skopeo_push(raw_layout)),
            (PUSH_PULLED, lambda: push([*OCIBUILD, "push", "-q", "--root", str(pull_store), src])),
            (SKOPEO_GZ, lambda: skopeo_push(gz_layout)),
            (PULL, ocibuild_pull),
            (SKOPEO_PULL, skopeo_pull),
        ]
        if args.baseline:
            base = shlex.split(args.baseline)
            jobs.insert(1, (PUSH_BASELINE, lambda: push([*base, "push", "-q", IMAGE], forget=True)))

        # skopeo really compresses an uncompressed layer when it pushes to a registry
        reg = fresh_registry(work, "reg-check")
        try:
            subprocess.run(
                [
                    skopeo,
                    "copy",
                    "-q",
                    "--dest-tls-verify=false",
                    f"oci:{raw_layout}:1",
                    f"docker://{reg.host}/check/raw:1",
                ],
                check=True,
            )
            skopeo_layers = pushed_layers(reg.host, "check/raw", "1")
        finally:
            reg.stop()
        if any(not m.endswith("gzip") or magic != "1f8b" for m, magic in skopeo_layers):
            raise SystemExit(f"skopeo did not push gzip layers: {skopeo_layers}")

        loads = [load()]
        for r in range(args.rounds):
            shift = r % len(jobs)
            for name, job in jobs[shift:] + jobs[:shift]:
                times.setdefault(name, []).append(job())
            print(f"round {r + 1}/{args.rounds} done (load {load()})", file=sys.stderr)
            loads.append(load())
    finally:
        source.stop()

    med = {name: statistics.median(secs) for name, secs in times.items()}
    print(
        f"\nDebian bookworm minbase image, {raw_size / 1e6:.0f} MB uncompressed, "
        f"{size / 1e6:.0f} MB gzip (ocibuild); {args.rounds} rounds interleaved, "
        f"{os.cpu_count()} cores, load average (1, 5, 15 min) {loads[0]} at the start, "
        f"{loads[-1]} at the end"
    )
    print(f"skopeo's layers pushed from the uncompressed layout: {skopeo_layers}\n")
    print("| transfer | median s | min | max |")
    print("|---|---|---|---|")
    for name, secs in times.items():
        print(f"| {name} | {med[name]:.2f} | {min(secs):.2f} | {max(secs):.2f} |")
    pull_floor = med[SKOPEO_PULL] + med[UNPACK]
    print(
        "\nratios ocibuild/skopeo (medians): push of the built image "
        f"{med[PUSH_BUILT] / med[SKOPEO_RAW]:.2f} "
        f"(both compress; target 1.5), upload only {med[PUSH_PULLED] / med[SKOPEO_GZ]:.2f}, "
        f"built image against skopeo's upload only {med[PUSH_BUILT] / med[SKOPEO_GZ]:.2f}; "
        f"pull {med[PULL] / med[SKOPEO_PULL]:.2f} (ocibuild also unpacks), "
        f"pull against skopeo copy + tar -xzf {med[PULL] / pull_floor:.2f} (target 2)"
    )
    if PUSH_BASELINE in med:
        print(
            "push of the built image, this ocibuild/baseline: "
            f"{med[PUSH_BUILT] / med[PUSH_BASELINE]:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
