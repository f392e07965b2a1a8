"""Hostile Dockerfiles, contexts and images: nothing of the host is read or written."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from hardening.layers import simple_tar
from tests.conftest import Ocibuild


def write(ctx: Path, dockerfile: str) -> None:
    (ctx / "Dockerfile").write_text(dockerfile)


def test_copy_symlink_to_host_etc(ocb: Ocibuild, base_image: str, context: Path) -> None:
    os.symlink("/etc", context / "hostetc")
    os.symlink("/etc/hostname", context / "hostname-link")
    write(context, f"FROM {base_image}\nCOPY hostetc/hostname /x\n")
    res = ocb.build(context, check=False)
    assert res.returncode == 1 and "not found in the build context" in res.stderr
    write(context, f"FROM {base_image}\nCOPY hostname-link /x\n")
    res = ocb.build(context, check=False)
    assert res.returncode == 1 and "not found in the build context" in res.stderr
    # a symlink inside a copied dir is copied as a symlink, never followed
    (context / "dir").mkdir()
    os.symlink("/etc/shadow", context / "dir" / "shadow")
    write(context, f"FROM {base_image}\nCOPY dir /d\n")
    ocb.build(context, "-t", "t-hostile-link")
    assert ocb.run("t-hostile-link", "readlink", "/d/shadow").stdout == "/etc/shadow\n"


def test_dotdot_sources_stay_in_context(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside-secret").write_text("secret")
    (context / "inside").write_text("inside\n")
    write(context, f"FROM {base_image}\nCOPY ../outside-secret /x\n")
    res = ocb.build(context, check=False)
    assert res.returncode == 1 and "not found in the build context" in res.stderr
    write(context, f"FROM {base_image}\nCOPY ../../inside /x\n")
    ocb.build(context, "-t", "t-dotdot")
    assert ocb.run("t-dotdot", "cat", "/x").stdout == "inside\n", "'..' is clamped at the root"


def test_dockerignore_reinclude_cannot_escape(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    (tmp_path / "escaped").write_text("no")
    (context / "keep").write_text("k")
    (context / ".dockerignore").write_text("*\n!../escaped\n!keep\n!Dockerfile\n")
    write(context, f"FROM {base_image}\nCOPY . /ctx/\n")
    ocb.build(context, "-t", "t-ignore-escape")
    out = ocb.run("t-ignore-escape", "find", "/ctx").stdout.split()
    assert sorted(out) == ["/ctx", "/ctx/Dockerfile", "/ctx/keep"]


def test_add_archive_cannot_write_outside(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    target = tmp_path / "host-target"
    target.mkdir()
    (context / "evil.tar.gz").write_bytes(
        simple_tar([("link", b"", str(target)), ("link/pwned", b"x", "")], gz=True)
    )
    write(context, f"FROM {base_image}\nADD evil.tar.gz /opt/\n")
    ocb.build(context, "-t", "t-add-evil")
    assert list(target.iterdir()) == [], "nothing written through the symlink to the host"
    out = ocb.run("t-add-evil", "cat", f"/opt{target}/pwned").stdout
    assert out == "x", "the symlink resolved inside the destination instead (as BuildKit)"


def test_passwd_symlink_to_host_file(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # CVE-2024-9676: /etc/passwd in the image is a symlink to an absolute host path.
    write(
        context,
        f"FROM {base_image}\n"
        "RUN mkdir -p /fake && echo 'ghost:x:4321:4321::/:/bin/sh' > /fake/passwd"
        " && rm /etc/passwd && ln -s /fake/passwd /etc/passwd\n"
        "USER ghost\nRUN id -u > /tmp/uid\n",
    )
    ocb.build(context, "-t", "t-passwd-link")
    assert ocb.run("t-passwd-link", "cat", "/tmp/uid").stdout == "4321\n"
    # and a link to a host-only file does not make the host's users visible
    write(
        context, f"FROM {base_image}\nRUN ln -sf /etc/host-only /etc/passwd\nUSER root\nRUN true\n"
    )
    res = ocb.build(context, check=False)
    assert res.returncode == 1 and "unable to find user root" in res.stderr


@pytest.mark.parametrize("user", ["4294967296", "99999999999999999999", "0:4294967296"])
def test_huge_numeric_user(ocb: Ocibuild, base_image: str, context: Path, user: str) -> None:
    write(context, f"FROM {base_image}\nUSER {user}\nRUN true\n")
    res = ocb.build(context, check=False)
    assert res.returncode == 1
    assert "Dockerfile:3" in res.stderr and "out of range" in res.stderr
    assert "Traceback" not in res.stderr


def test_workdir_proc_self_fd(ocb: Ocibuild, base_image: str, context: Path) -> None:
    # CVE-2024-21626: a working directory through a leaked fd must not reach the host.
    for n in range(3, 10):
        write(
            context, f"FROM {base_image}\nWORKDIR /proc/self/fd/{n}\nRUN ls ../../../../ > /tmp/l\n"
        )
        res = ocb.build(context, "-t", "t-procfd", check=False)
        if res.returncode == 0:
            listing = ocb.run("t-procfd", "cat", "/tmp/l").stdout.split()
            assert "work" not in listing and "ocibuild" not in listing, listing


def test_run_sees_no_host_fds_mounts_or_extra_caps(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    write(
        context,
        f"FROM {base_image}\n"
        "RUN echo FDS $(ls /proc/self/fd | sort -n);"
        " echo CAPS $(grep CapEff /proc/self/status);"
        " echo MOUNTS $(cut -d' ' -f5 /proc/self/mountinfo | sort)\n",
    )
    res = ocb.build(context)
    found = {}
    for line in res.stderr.splitlines():
        key, _, rest = line.strip().partition(" ")
        if key in ("FDS", "CAPS", "MOUNTS"):
            found[key] = rest.split()
    # ls's own directory fd is 3; nothing of the host (store, pipes, sockets) is inherited
    assert found["FDS"] == ["0", "1", "2", "3"], found["FDS"]
    assert found["CAPS"] == ["CapEff:", "00000000a80425fb"], "Docker's default set only"
    expected = {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"}
    assert expected <= set(found["MOUNTS"])
    # the default devices are bound one by one from the host (a nodev /dev, see the README)
    devices = {f"/dev/{d}" for d in ("null", "zero", "full", "random", "urandom", "tty")}
    allowed = expected | devices | {"/sys/fs/cgroup", "/etc/hosts", "/etc/resolv.conf"}
    allowed |= {"/etc/hostname"}
    masked = [m for m in found["MOUNTS"] if m.startswith(("/proc/", "/sys/"))]
    assert set(found["MOUNTS"]) - allowed - set(masked) == set(), found["MOUNTS"]


def test_run_mount_sources_cannot_escape(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    # CVE-2024-1753: bind-mount sources that climb or link out of the context or stage.
    marker = tmp_path / "HOST-ONLY-MARKER"
    marker.write_text("host")
    os.symlink("/", context / "rootlink")
    os.symlink(str(tmp_path), context / "tmplink")
    (context / "inside").write_text("ctx\n")
    write(
        context,
        f"FROM {base_image} AS evil\n"
        f"RUN ln -s / /evil && ln -s {tmp_path} /evil2\n"
        f"FROM {base_image}\n"
        "RUN --mount=type=bind,source=../../../..,target=/m ls -a /m > /ctx-up.txt\n"
        "RUN --mount=type=bind,from=evil,source=evil,target=/m ls /m > /stage-root.txt\n",
    )
    ocb.build(context, "-t", "t-mount-escape")
    listing = ocb.run("t-mount-escape", "cat", "/ctx-up.txt").stdout.split()
    assert "inside" in listing and "HOST-ONLY-MARKER" not in listing, "'..' stays in the context"
    stage_root = ocb.run("t-mount-escape", "cat", "/stage-root.txt").stdout.split()
    assert "evil" in stage_root, "a symlink to / in a stage resolves to the stage's own root"
    assert "work" not in stage_root and "HOST-ONLY-MARKER" not in stage_root
    # a link to a host directory resolves inside the stage, where that path does not exist
    dockerfile = (context / "Dockerfile").read_text()
    write(context, dockerfile + "RUN --mount=type=bind,from=evil,source=evil2,target=/m ls /m\n")
    res = ocb.build(context, check=False)
    assert res.returncode == 1 and "mount source 'evil2' not found in 'evil'" in res.stderr
    assert "HOST-ONLY-MARKER" not in res.stderr
    # a symlink to / in the context is the context's own root
    write(context, f"FROM {base_image}\nRUN --mount=type=bind,source=rootlink,target=/m ls /m\n")
    res = ocb.build(context)
    assert "inside" in res.stderr and "HOST-ONLY-MARKER" not in res.stderr
    # a symlink to a host directory resolves inside the context, where it does not exist
    write(context, f"FROM {base_image}\nRUN --mount=type=bind,source=tmplink,target=/m ls /m\n")
    res = ocb.build(context, check=False)
    assert "HOST-ONLY-MARKER" not in res.stderr
    assert res.returncode == 1 and "not found in the build context" in res.stderr


def test_killed_lock_holder_does_not_block(ocb: Ocibuild, base_image: str, context: Path) -> None:
    import signal
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from ocibuild.image.store import Store\n"
            "with Store(sys.argv[1]).lock():\n    print('locked', flush=True); time.sleep(600)\n",
            str(ocb.root),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    write(context, f"FROM {base_image}\nRUN echo after-the-kill\n")
    # a lock held by a dead process is free at once: no wait for a timeout or a retry
    res = ocb.build(context, "-t", "t-after-lock", timeout=60)
    assert "after-the-kill" in res.stderr


def test_dev_symlink_in_image(ocb: Ocibuild, context: Path, tmp_path: Path) -> None:
    # An image whose /dev (or /proc) is a symlink to a host path: the runtime's mounts
    # and our stub handling must resolve it inside the rootfs.
    import shutil

    host_dir = tmp_path / "host-dev-target"
    host_dir.mkdir()
    (host_dir / "sentinel").write_text("untouched")
    shutil.copy("/bin/busybox", context / "busybox")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name in ("dev", "proc"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = str(host_dir)
            tf.addfile(info)
    (context / "links.tar").write_bytes(buf.getvalue())
    write(
        context,
        "FROM scratch\nCOPY busybox /bin/busybox\nADD links.tar /\n"
        'RUN ["/bin/busybox", "sh", "-c",'
        ' "/bin/busybox ls /dev > /seen; /bin/busybox echo x > /dev/pwned || true"]\n',
    )
    res = ocb.build(context, check=False)
    # refused before any sandbox starts (every one of them: runc, crun, native-chroot)
    assert res.returncode == 1 and "Dockerfile:4: RUN" in res.stderr
    assert "in the image is a symlink or not a directory" in res.stderr
    assert "Traceback" not in res.stderr
    assert sorted(p.name for p in host_dir.iterdir()) == ["sentinel"], res.stderr
    assert (host_dir / "sentinel").read_text() == "untouched"
    assert str(host_dir) not in "".join(mountinfo_lines())


def mountinfo_lines() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return f.readlines()
