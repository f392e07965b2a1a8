"""crun's precompiled seccomp filter (``run.oci.seccomp_bpf_data``) is the one it compiles.

ocibuild hands crun the BPF program libseccomp compiled once per build instead of letting
crun compile Docker's profile again for every RUN step. This proves the two are the same
program, byte for byte: crun is asked to ``create`` (not start) a container from the
same ``linux.seccomp`` without the annotation, and the program it wrote to its state
directory (``seccomp.bpf``, what it then loads) is compared with ours. A step's view of
the filter (EPERM for unshare, ENOSYS for clone3) is checked by test_sandbox_oci.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ocibuild.runtime.bundle import write_bundle
from ocibuild.runtime.runner import make_runner
from ocibuild.runtime.seccomp import compile_bpf, spec_seccomp
from ocibuild.runtime.spec import DEFAULT_CAPABILITIES, make_spec


def test_crun_compiles_the_same_program(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (crun creates a container)")
    if shutil.which("crun") is None:
        pytest.skip("crun is not installed")
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "bin" / "true").write_text("#!/bin/sh\n")  # crun checks it; never started
    (rootfs / "bin" / "true").chmod(0o755)
    profile = spec_seccomp(DEFAULT_CAPABILITIES)
    spec = make_spec(
        rootfs=str(rootfs),
        args=["/bin/true"],
        env=[],
        cwd="/",
        uid=0,
        gid=0,
        additional_gids=[],
        hostname="t",
        etc_files={},
        network="none",
        seccomp=profile,
    )
    bundle = tmp_path / "bundle"
    write_bundle(str(bundle), spec)
    runner = make_runner("crun", state_root=str(tmp_path / "state"))
    os.makedirs(runner.state_root, mode=0o700)
    base = [runner.runtime, "--root", runner.state_root, *runner.global_args]
    errors = tmp_path / "crun-stderr"
    with open(errors, "wb") as err:  # (a file: the created container holds its stdio)
        created = subprocess.run(
            [*base, "create", "--bundle", str(bundle), "ocb-seccomp-test"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=runner.preexec,
            timeout=60,
        )
    try:
        assert created.returncode == 0, errors.read_text()
        theirs = (tmp_path / "state" / "ocb-seccomp-test" / "seccomp.bpf").read_bytes()
    finally:
        runner.delete("ocb-seccomp-test")
    ours = compile_bpf(profile)
    assert len(ours) > 1000 and ours == theirs
