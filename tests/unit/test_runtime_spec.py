"""runtime/spec.py: the config a RUN step gets (pure, no privileges)."""

from __future__ import annotations

from typing import Any

import pytest

from ocibuild.errors import OcibuildError
from ocibuild.runtime.spec import (
    container_mount_destinations,
    make_spec,
    with_nodev_rootfs_hook,
    with_seccomp_program,
)

DOCKER_CAPS = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}  # fmt: skip


def spec(**over: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "rootfs": "/r/merged",
        "args": ["/bin/sh", "-c", "echo hi"],
        "env": ["PATH=/bin"],
        "cwd": "/work",
        "uid": 1000,
        "gid": 1000,
        "additional_gids": [50],
        "hostname": "buildkitsandbox",
        "etc_files": {"/etc/resolv.conf": "/b/etc/resolv.conf", "/etc/hosts": "/b/etc/hosts"},
    }
    kw.update(over)
    return make_spec(**kw)


def mount(s: dict[str, Any], dest: str) -> dict[str, Any]:
    (m,) = [m for m in s["mounts"] if m["destination"] == dest]
    return m


def test_process() -> None:
    s = spec()
    assert s["ociVersion"] == "1.0.2"
    p = s["process"]
    assert p["terminal"] is False
    assert p["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [50]}
    assert p["args"] == ["/bin/sh", "-c", "echo hi"]
    assert p["env"] == ["PATH=/bin"] and p["cwd"] == "/work"
    assert p["noNewPrivileges"] is False
    assert "rlimits" not in p
    for kind in ("bounding", "effective", "permitted"):
        assert set(p["capabilities"][kind]) == DOCKER_CAPS
    assert "inheritable" not in p["capabilities"] and "ambient" not in p["capabilities"]
    assert s["root"] == {"path": "/r/merged", "readonly": False}
    assert s["hostname"] == "buildkitsandbox"


def test_no_additional_gids_key_when_empty() -> None:
    assert spec(additional_gids=[])["process"]["user"] == {"uid": 1000, "gid": 1000}


def test_namespaces_by_network_mode() -> None:
    host = [n["type"] for n in spec()["linux"]["namespaces"]]
    assert host == ["pid", "ipc", "uts", "mount"]
    none = [n["type"] for n in spec(network="none")["linux"]["namespaces"]]
    assert none == ["pid", "ipc", "uts", "mount", "network"]
    private = spec(network="private", netns_path="/s/netns")["linux"]["namespaces"]
    assert private[-1] == {"type": "network", "path": "/s/netns"}
    with pytest.raises(OcibuildError, match="network namespace path"):
        spec(network="private")
    with pytest.raises(OcibuildError, match="network namespace path"):
        spec(network="host", netns_path="/s/netns")


def test_mounts_like_buildkit() -> None:
    s = spec()
    devices = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"]
    assert container_mount_destinations(s) == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", *devices,
        "/etc/resolv.conf", "/etc/hosts", "/sys/fs/cgroup",
    ]  # fmt: skip
    assert mount(s, "/proc") == {"destination": "/proc", "type": "proc", "source": "proc"}
    # Hardened: /dev is nodev, the default devices are bound from the host's /dev.
    assert mount(s, "/dev")["options"] == [
        "nosuid", "nodev", "strictatime", "mode=755", "size=65536k",
    ]  # fmt: skip
    for dev in devices:
        assert mount(s, dev) == {
            "destination": dev, "type": "bind", "source": dev,
            "options": ["bind", "nosuid", "noexec"],
        }  # fmt: skip
    assert mount(s, "/dev/pts")["options"] == [
        "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5",
    ]  # fmt: skip
    shm = mount(s, "/dev/shm")
    assert (shm["type"], shm["options"]) == (
        "tmpfs",
        ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    )
    assert mount(s, "/dev/mqueue")["type"] == "mqueue"
    assert mount(s, "/sys")["options"] == ["nosuid", "noexec", "nodev", "ro"]
    cg = mount(s, "/sys/fs/cgroup")
    assert (cg["type"], cg["options"]) == ("cgroup", ["ro", "nosuid", "noexec", "nodev"])
    hosts = mount(s, "/etc/hosts")
    assert hosts == {
        "destination": "/etc/hosts",
        "type": "bind",
        "source": "/b/etc/hosts",
        "options": ["nosuid", "noexec", "nodev", "rbind", "ro"],
    }


def test_extra_mounts_are_nodev() -> None:
    cache = {"destination": "/c", "type": "bind", "source": "/x", "options": ["rbind", "rw"]}
    tmp = {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["dev"]}
    s = spec(extra_mounts=[cache, tmp, {"destination": "/n", "type": "bind", "source": "/y"}])
    assert mount(s, "/c")["options"] == ["rbind", "rw", "nodev"]
    assert mount(s, "/t")["options"] == ["nodev"]
    assert mount(s, "/n")["options"] == ["nodev"]
    assert cache["options"] == ["rbind", "rw"]  # the caller's mapping is not changed


def test_seccomp_and_crun_hook() -> None:
    assert "seccomp" not in spec()["linux"]
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]}
    s = spec(seccomp=profile)
    assert s["linux"]["seccomp"] == profile and s["linux"]["seccomp"] is not profile
    hooked = with_nodev_rootfs_hook(s, "/usr/bin/mount", "/usr/bin/cat")
    (hook,) = hooked["hooks"]["createContainer"]
    assert hook["path"] == "/bin/sh"
    assert hook["args"][-3:] == ["/usr/bin/mount", "/r/merged", "/usr/bin/cat"]
    # the remount comes first and its failure fails the hook; cat drains crun's state
    assert '-o remount,bind,nodev -- "$1" && exec "$2"' in hook["args"][2]
    assert "hooks" not in s
    boxed = with_nodev_rootfs_hook(s, "", busybox="/bin/busybox")
    (hook,) = boxed["hooks"]["createContainer"]
    assert hook["path"] == "/bin/busybox" and hook["args"][0] == "sh"
    assert hook["args"][-2:] == ["/bin/busybox", "/r/merged"]
    assert '"$0" mount -o remount,bind,nodev -- "$1" && exec "$0" cat' in hook["args"][2]
    program = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # ret ALLOW
    annotated = with_seccomp_program(s, program)
    assert annotated["annotations"] == {"run.oci.seccomp_bpf_data": "BgAAAAAA/38="}
    assert annotated["linux"]["seccomp"] == profile  # flags, and runtimes without it
    assert "annotations" not in s
    with pytest.raises(OcibuildError):
        with_seccomp_program(spec(), program)


def test_masked_and_readonly_paths() -> None:
    linux = spec()["linux"]
    for p in (
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
        "/sys/firmware", "/sys/devices/virtual/powercap",
    ):  # fmt: skip
        assert p in linux["maskedPaths"]
    assert linux["readonlyPaths"] == [
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
    ]  # fmt: skip
    assert linux["resources"]["devices"] == [{"allow": False, "access": "rwm"}]


def test_readonly_rootfs_and_rlimits() -> None:
    s = spec(readonly_rootfs=True, rlimits=[("nofile", 1024, 4096), ("RLIMIT_NPROC", 10, 10)])
    assert s["root"]["readonly"] is True
    assert s["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
        {"type": "RLIMIT_NPROC", "soft": 10, "hard": 10},
    ]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"args": []}, "empty command"),
        ({"cwd": "work"}, "must be absolute"),
        ({"uid": 2**32 - 1}, "uid 4294967295 out of range"),
        ({"additional_gids": [-1]}, "gid -1 out of range"),
        ({"rlimits": [("bogus", 1, 1)]}, "unknown rlimit"),
        ({"rlimits": [("nofile", 2, 1)]}, "soft 2 must be <= hard 1"),
        ({"network": "bridge"}, "unsupported network mode"),
    ],
)
def test_rejects_bad_input(over: dict[str, Any], message: str) -> None:
    with pytest.raises(OcibuildError, match=message):
        spec(**over)


def test_deterministic_and_independent() -> None:
    a, b = spec(), spec()
    assert a == b
    a["process"]["capabilities"]["effective"].append("CAP_SYS_ADMIN")
    assert "CAP_SYS_ADMIN" not in b["process"]["capabilities"]["effective"]
    assert "CAP_SYS_ADMIN" not in a["process"]["capabilities"]["bounding"]
