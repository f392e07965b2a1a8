"""What each protection of the RUN sandbox costs the OCI runtime, per step.

Usage (as root): ``.venv/bin/python bench/sandbox_cost.py [--rounds 50] [--runtime crun,runc]``

One rootfs (bench.py's busybox tree under a kernel overlay mounted nodev, as a build
mounts it) and one build network (slirp4netns), then ``RUNTIME run`` of ``sh -c 'echo'``
with config.json variants, the variants interleaved round-robin ``--rounds`` times:

* ``bare``: the spec without the security work (no seccomp, the host network, /dev
  without nodev and its devices made by the runtime: the sandbox as of f8393de);
* ``+seccomp (compiled by runtime)``: Docker's profile in ``linux.seccomp``;
* ``+seccomp with x32``: the same with the x32 ABI in ``architectures`` (as before);
* ``+seccomp (precompiled)``: the same plus crun's ``run.oci.seccomp_bpf_data``;
* ``+netns``: joining the build's network namespace;
* ``+devices``: /dev nodev, the default devices bound from the host;
* ``+nodev hook``: crun's createContainer hook (busybox; ``util-linux`` variant);
* ``ocibuild``: everything, as ocibuild runs a step now.

It prints, per variant, the median and quartiles of the wall time and of the CPU time
(user + system of the runtime and everything it waited for: steadier on a loaded
machine) and the difference of the medians with ``bare``.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench
from ocibuild import _native
from ocibuild.runtime import spec as S
from ocibuild.runtime.bundle import write_bundle, write_etc_files
from ocibuild.runtime.network import BuildNetwork
from ocibuild.runtime.runner import make_runner
from ocibuild.runtime.seccomp import compile_bpf, host_arch, spec_seccomp
from ocibuild.storage import driver

Variant = Callable[[dict[str, Any]], dict[str, Any]]


def base_spec(rootfs: str, etc: dict[str, str]) -> dict[str, Any]:
    return S.make_spec(
        rootfs=rootfs,
        args=["/bin/sh", "-c", "echo step"],
        env=["PATH=" + S.DEFAULT_PATH],
        cwd="/",
        uid=0,
        gid=0,
        additional_gids=[0],
        hostname="buildkitsandbox",
        etc_files=etc,
    )


def bare(spec: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(spec))
    devices = {f"/dev/{d}" for d in S.DEFAULT_DEVICES}
    out["mounts"] = [m for m in out["mounts"] if m["destination"] not in devices]
    for m in out["mounts"]:
        if m["destination"] == "/dev":
            m["options"] = [o for o in m["options"] if o != "nodev"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--runtime", default="crun,runc")
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/ocibuild-sandbox-cost"))
    args = ap.parse_args()
    _native.enter_mount_namespace()
    args.work.mkdir(parents=True, exist_ok=True)
    tree = bench.busybox_tree(args.work)
    scratch = tempfile.mkdtemp(dir=args.work)
    mount = driver.prepare("overlay", [str(tree)], os.path.join(scratch, "rootfs"))
    with mount, BuildNetwork(scratch) as net:
        netns = net.netns()
        etc = write_etc_files(os.path.join(scratch, "etc-src"), network="private")
        spec = base_spec(mount.target, etc)
        profile = spec_seccomp(S.DEFAULT_CAPABILITIES)
        program = compile_bpf(profile)
        busybox = shutil.which("busybox", path="/usr/bin:/bin")
        mount_bin = shutil.which("mount", path="/usr/bin:/bin") or "mount"
        cat_bin = shutil.which("cat", path="/usr/bin:/bin") or "cat"

        def seccomp(s: dict[str, Any]) -> dict[str, Any]:
            return {**s, "linux": {**s["linux"], "seccomp": profile}}

        def seccomp_x32(s: dict[str, Any]) -> dict[str, Any]:
            arches = [*profile.get("architectures", []), "SCMP_ARCH_X32"]
            return {**s, "linux": {**s["linux"], "seccomp": {**profile, "architectures": arches}}}

        def netjoin(s: dict[str, Any]) -> dict[str, Any]:
            ns = [*s["linux"]["namespaces"], {"type": "network", "path": netns}]
            return {**s, "linux": {**s["linux"], "namespaces": ns}}

        def hook(s: dict[str, Any]) -> dict[str, Any]:
            return S.with_nodev_rootfs_hook(s, mount_bin, cat_bin, busybox=busybox)

        def hook_ul(s: dict[str, Any]) -> dict[str, Any]:
            return S.with_nodev_rootfs_hook(s, mount_bin, cat_bin)

        b = bare(spec)
        full = netjoin(seccomp(spec))
        variants: dict[str, dict[str, Any]] = {
            "bare": b,
            "+seccomp (compiled by runtime)": seccomp(b),
            "+netns": netjoin(b),
            "+devices": spec,
        }
        if host_arch() == "amd64":
            variants["+seccomp with x32 (compiled by runtime)"] = seccomp_x32(b)
        crun_only = {
            "+seccomp (precompiled)": S.with_seccomp_program(seccomp(b), program),
            "+nodev hook (busybox)": hook(b),
            "+nodev hook (util-linux)": hook_ul(b),
            "ocibuild": S.with_seccomp_program(hook(full), program),
        }
        for runtime in args.runtime.split(","):
            chosen = dict(variants)
            if runtime == "crun":
                chosen.update(crun_only)
            else:
                chosen["ocibuild"] = full
            measure(runtime, chosen, os.path.join(scratch, runtime), args.rounds)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


def measure(runtime: str, variants: dict[str, dict[str, Any]], work: str, rounds: int) -> None:
    runner = make_runner(runtime, state_root=os.path.join(work, "state"))
    os.makedirs(runner.state_root, mode=0o700, exist_ok=True)
    for n, spec in enumerate(variants.values()):
        write_bundle(os.path.join(work, f"b{n}"), spec)
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    count = 0
    for r in range(rounds):
        order = list(enumerate(variants))
        for n, name in order if r % 2 == 0 else reversed(order):
            count += 1
            argv = [runner.runtime, "--root", runner.state_root, *runner.global_args]
            argv += ["run", "--bundle", os.path.join(work, f"b{n}"), f"cost-{count}"]
            started = time.perf_counter()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                preexec_fn=runner.preexec,
            )
            assert proc.stdout is not None
            out = proc.stdout.read()
            proc.stdout.close()
            _, status, usage = os.wait4(proc.pid, 0)
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(usage.ru_utime + usage.ru_stime)
            if status != 0 or b"step" not in out:
                raise SystemExit(f"{runtime} {name}: status {status}: {out[-400:]!r}")
    ref_wall, ref_cpu = statistics.median(wall["bare"]), statistics.median(cpu["bare"])
    print(f"\n{runtime}, {rounds} runs each (ms: median [quartiles], +/- median vs bare)")
    print("| variant | wall | CPU |\n|---|---|---|")
    for name in variants:
        print(f"| {name} | {fmt(wall[name], ref_wall)} | {fmt(cpu[name], ref_cpu)} |")


def fmt(values: list[float], ref: float) -> str:
    v = sorted(values)
    med = statistics.median(v)
    q1, q3 = v[len(v) // 4], v[(3 * len(v)) // 4]
    return f"{med * 1000:.1f} [{q1 * 1000:.1f}-{q3 * 1000:.1f}] {(med - ref) * 1000:+.1f}"


if __name__ == "__main__":
    sys.exit(main())
