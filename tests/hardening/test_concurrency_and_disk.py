"""Four builds at once on one store; a full disk during a build and an export."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BASE_DOCKERFILE, BUSYBOX, Ocibuild, require_root


def test_four_builds_at_once(tmp_path: Path) -> None:
    require_root()
    ocb = Ocibuild(tmp_path / "store")
    base = tmp_path / "base"
    base.mkdir()
    shutil.copy(BUSYBOX, base / "busybox")
    (base / "Dockerfile").write_text(BASE_DOCKERFILE)
    ocb.build(base, "-t", "base:c")
    procs = []
    for n in range(4):
        ctx = tmp_path / f"ctx{n}"
        ctx.mkdir()
        (ctx / "same").write_text("identical in every build\n")
        # COPY of the same file gives the same layer in all four: a commit race
        (ctx / "Dockerfile").write_text(
            f"FROM base:c\nCOPY same /same\nRUN echo {n} > /n && sleep 0.5\nRUN cat /n /same\n"
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "ocibuild", "build", "-t", f"c:{n}", str(ctx)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "OCIBUILD_ROOT": str(ocb.root)},
            )
        )
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    for n in range(4):
        assert ocb.run(f"c:{n}", "cat", "/n").stdout == f"{n}\n"
    fsck = ocb("fsck", check=False)
    assert fsck.returncode == 0, fsck.stdout
    same = {ocb.config(f"c:{n}")["rootfs"]["diff_ids"][-3] for n in range(4)}
    assert len(same) == 1, "the shared COPY layer is one layer in the store"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    require_root()
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_during_run(small_disk: Path, tmp_path: Path) -> None:
    ocb = Ocibuild(small_disk / "store")
    base = tmp_path / "base"
    base.mkdir()
    shutil.copy(BUSYBOX, base / "busybox")
    (base / "Dockerfile").write_text(BASE_DOCKERFILE)
    ocb.build(base, "-t", "base:d")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM base:d\nRUN dd if=/dev/zero of=/big bs=1M count=64\n")
    res = ocb.build(ctx, "-t", "full", check=False)
    assert res.returncode == 1
    assert "No space left on device" in res.stderr
    assert "Dockerfile:2: RUN" in res.stderr and "Traceback" not in res.stderr
    assert ocb("inspect", "full", check=False).returncode == 1
    assert ocb("fsck", check=False).returncode == 0
    assert [n for n in os.listdir(ocb.root / "tmp") if n.startswith("build-")] == []


def test_disk_full_during_export(small_disk: Path, tmp_path: Path) -> None:
    ocb = Ocibuild(tmp_path / "store")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "noise").write_bytes(os.urandom(20 << 20))
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY noise /noise\n")
    dest = small_disk / "layout"
    res = ocb.build(ctx, "--output", f"type=oci,dest={dest}", check=False)
    assert res.returncode == 1
    assert "No space left on device" in res.stderr and "Traceback" not in res.stderr
    assert not (dest / "index.json").exists(), "no layout that looks complete"


def test_prune_all_leaves_a_running_build_alone(tmp_path: Path) -> None:
    require_root()
    ocb = Ocibuild(tmp_path / "store")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(BUSYBOX, ctx / "busybox")
    (ctx / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox sleep 2; /bin/busybox touch /done"]\n'
        'RUN ["/bin/busybox", "ls", "/done"]\n'
    )
    build = subprocess.Popen(
        [sys.executable, "-m", "ocibuild", "build", "-t", "busy", str(ctx)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OCIBUILD_ROOT": str(ocb.root)},
    )
    import time

    deadline = time.monotonic() + 30
    while not (ocb.root / "layers").is_dir() or not os.listdir(ocb.root / "layers"):
        assert time.monotonic() < deadline and build.poll() is None
        time.sleep(0.05)
    prune = ocb("prune", "--all")  # the COPY layer is not tagged yet: it must survive
    assert "the store is in use" in prune.stdout
    _, err = build.communicate(timeout=60)
    assert build.returncode == 0, err
    assert ocb("fsck", check=False).returncode == 0
    assert ocb.run("busy", "/bin/busybox", "ls", "/done").stdout == "/done\n"
    # with nothing running, an untagged layer is collected
    ocb("rmi", "busy")
    assert "removed layer" in ocb("prune", "--all").stdout
