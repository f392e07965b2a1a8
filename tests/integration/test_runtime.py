"""RUN steps end to end: overlay over a busybox rootfs, a bundle, real runc.

Each step runs in a forked child that enters its own mount namespace, so the test
runner's namespace and the host's mount table are never touched.
"""

from __future__ import annotations

import os
import pickle
import random
import select
import shutil
import signal
import stat
import subprocess
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ocibuild.errors import OcibuildError, RuntimeFailure
from ocibuild.runtime import bundle, spec, stubs, users
from ocibuild.runtime.runner import Runner
from ocibuild.storage.overlay import prepare_rootfs
from tests.conftest import in_child, mountinfo_mentions

RUNC = shutil.which("runc")
BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "ls", "cat", "touch", "rm", "mkdir", "id", "echo", "grep", "sleep", "stat", "true")


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="rootful runc needs root"),
    pytest.mark.skipif(RUNC is None, reason="runc not installed"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox-static not installed"),
]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("busybox")
    (root / "bin").mkdir()
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for name in APPLETS:
        (root / "bin" / name).symlink_to("busybox")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nstaff:x:50:app\n")
    (root / "tmp").mkdir(mode=0o1777)
    (root / "lowerfile").write_text("from the lower layer\n")
    return str(root)


def run_step(
    base: str, work: str, args: Sequence[str], user: str = "", cid: str = "step"
) -> dict[str, Any]:
    """Child side: overlay + bundle + runc, then stub clean-up; returns observations."""
    ov = prepare_rootfs([base], os.path.join(work, "rootfs"))
    out = bytearray()
    with ov:
        who = users.resolve_user(ov.target, user)
        bdir = os.path.join(work, "bundle")
        etc = bundle.write_etc_files(bdir, host_resolv="nameserver 10.0.0.1\n")
        cfg = spec.make_spec(
            rootfs=ov.target,
            args=args,
            env=["PATH=/bin"],
            cwd="/",
            uid=who.uid,
            gid=who.gid,
            additional_gids=who.additional_gids,
            hostname="buildkitsandbox",
            etc_files=etc,
        )
        missing = stubs.find_missing(ov.target, spec.container_mount_destinations(cfg))
        bundle.write_bundle(bdir, cfg)
        runner = Runner(state_root=os.path.join(work, "state"))
        try:
            rc = runner.run(bdir, cid, on_output=out.extend)
            failure = None
        except RuntimeFailure as exc:
            rc, failure = -1, exc.message
        stubs_before = sorted(os.listdir(ov.upper))
    removed = stubs.remove_stubs(ov.upper, missing)
    upper: dict[str, tuple[str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(ov.upper):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            kind = "c" if stat.S_ISCHR(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else "f"
            upper[os.path.relpath(p, ov.upper)] = (kind, st.st_rdev)
    return {
        "rc": rc,
        "failure": failure,
        "out": out.decode(),
        "missing": missing,
        "removed": removed,
        "before": stubs_before,
        "upper": upper,
        "state": os.listdir(os.path.join(work, "state")),
    }


def step(base: str, tmp_path: Path, args: Sequence[str], user: str = "") -> dict[str, Any]:
    res: dict[str, Any] = in_child(run_step, base, str(tmp_path), args, user)
    assert mountinfo_mentions(str(tmp_path)) == []
    return res


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", "0 0 0"),
        ("root", "0 0 0"),
        ("app", "1000 1000 1000 50"),
        ("1000", "1000 1000 1000 50"),
        ("app:staff", "1000 50 50"),
        ("app:77", "1000 77 77"),
        ("1000:1000", "1000 1000 1000"),
        ("4242", "4242 0 0"),
    ],
)
def test_user_resolution_seen_by_id(base: str, tmp_path: Path, user: str, expected: str) -> None:
    res = step(base, tmp_path, ["sh", "-c", "echo $(id -u) $(id -g) $(id -G)"], user)
    assert res["rc"] == 0, res["out"]
    assert res["out"].strip() == expected


def test_sandbox_matches_a_build_step(base: str, tmp_path: Path) -> None:
    script = (
        "grep CapEff /proc/self/status; cat /etc/hosts; cat /etc/resolv.conf; "
        "stat -c '%F %t,%T' /dev/null; echo pid=$$; ls /proc/1/cmdline"
    )
    res = step(base, tmp_path, ["sh", "-c", script])
    assert res["rc"] == 0, res["out"]
    out = res["out"]
    assert "CapEff:\t00000000a80425fb" in out
    assert "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost" in out
    assert "nameserver 10.0.0.1" in out
    assert "character special file 1,3" in out
    assert "pid=1" in out


def test_writes_deletes_and_stubs(base: str, tmp_path: Path) -> None:
    res = step(base, tmp_path, ["sh", "-c", "echo hi > /new; rm /lowerfile; mkdir -p /made"])
    assert res["rc"] == 0, res["out"]
    upper = res["upper"]
    assert upper["new"][0] == "f"
    assert upper["lowerfile"] == ("c", 0)  # whiteout: char device 0/0
    assert upper["made"][0] == "d"
    # runc created these only to mount over them; none may reach the layer.
    assert {"proc", "sys", "dev", "etc/hosts", "etc/resolv.conf"} <= set(res["missing"])
    assert {"proc", "sys", "dev"} <= set(res["before"])
    for stub in ("proc", "sys", "dev", "etc/hosts", "etc/resolv.conf"):
        assert stub not in upper
    assert res["state"] == []


def test_stub_filled_by_the_step_stays(base: str, tmp_path: Path) -> None:
    res = step(base, tmp_path, ["sh", "-c", "mkdir -p /sys/x 2>/dev/null; echo x > /tmp/y"])
    assert res["rc"] == 0
    assert "tmp/y" in res["upper"]
    assert "sys" not in res["upper"]


def test_exit_status_is_the_process_status(base: str, tmp_path: Path) -> None:
    res = step(base, tmp_path, ["sh", "-c", "exit 3"])
    assert (res["rc"], res["failure"]) == (3, None)


def test_runtime_failure_is_not_an_exit_status(base: str, tmp_path: Path) -> None:
    res = step(base, tmp_path, ["/no/such/binary"])
    assert res["rc"] == -1
    assert "no/such/binary" in res["failure"]
    assert res["state"] == []


# a command line no other process on the machine has (the test looks for it with ps)
SLEEP = f"sleep {random.randrange(60000, 99999)}"


def _interrupted_child(base: str, work: str, ready_path: str) -> dict[str, Any]:
    ov = prepare_rootfs([base], os.path.join(work, "rootfs"))
    bdir = os.path.join(work, "bundle")
    try:
        with ov:
            cfg = spec.make_spec(
                rootfs=ov.target,
                args=["sh", "-c", f"echo ready; exec {SLEEP}"],
                env=["PATH=/bin"],
                cwd="/",
                uid=0,
                gid=0,
                additional_gids=(),
                hostname="buildkitsandbox",
                etc_files=bundle.write_etc_files(bdir),
            )
            bundle.write_bundle(bdir, cfg)

            def on_output(chunk: bytes) -> None:
                if b"ready" in chunk:
                    Path(ready_path).write_text("ready")

            Runner(state_root=os.path.join(work, "state")).run(bdir, "intr", on_output=on_output)
    except KeyboardInterrupt:
        return {"interrupted": True, "mounted": bool(mountinfo_mentions(ov.target))}
    return {"interrupted": False, "mounted": bool(mountinfo_mentions(ov.target))}


def test_keyboard_interrupt_cleans_up(base: str, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            payload = pickle.dumps(_interrupted_child(base, str(tmp_path), str(ready)))
        except BaseException:
            payload = pickle.dumps({"error": traceback.format_exc()})
        os.write(w, payload)
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + 20
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ready.exists(), "the step never started"
    os.kill(pid, signal.SIGINT)
    # the answer comes at once, not after the 100 s of sleep
    readable, _, _ = select.select([r], [], [], 60)
    assert readable, "SIGINT did not stop the step"
    with os.fdopen(r, "rb") as f:
        res = pickle.loads(f.read())
    os.waitpid(pid, 0)
    assert res == {"interrupted": True, "mounted": False}
    assert mountinfo_mentions(str(tmp_path)) == []
    listed = subprocess.run(
        [str(RUNC), "--root", str(tmp_path / "state"), "list", "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert listed.stdout.strip() == ""
    assert os.listdir(tmp_path / "state") == []
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False)
    assert SLEEP not in ps.stdout


def test_resolve_user_reads_passwd_inside_the_root(base: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(base, root, symlinks=True)
    host_file = tmp_path / "host-passwd"
    host_file.write_text("evil:x:0:0::/:/bin/sh\n")
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "passwd").symlink_to(str(host_file))  # absolute: the host's path
    with pytest.raises(OcibuildError, match="unable to find user evil"):
        users.resolve_user(str(root), "evil")
    inside = root / host_file.relative_to("/")
    inside.parent.mkdir(parents=True)
    inside.write_text("img:x:7:8::/home/img:/bin/sh\n")
    assert users.resolve_user(str(root), "img").uid == 7
