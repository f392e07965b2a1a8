"""OCI runtime-spec ``config.json`` for one build step (pure: no I/O).

It reproduces what BuildKit gives a RUN step (containerd's default Unix spec as amended by
``executor/oci``): pid/ipc/uts/mount namespaces, the default mounts, Docker's default
capability set, Docker's default seccomp profile (computed by :mod:`seccomp` and passed
in), masked and read-only paths, new privileges allowed, no rlimits unless asked for.
Not reproduced: AppArmor.

Two hardenings over BuildKit, the same for every runtime (crun runs without a device
cgroup here, see runner.py): every filesystem the step can write device nodes to is
``nodev`` (/dev, every RUN --mount; the rootfs mount itself is made nodev by the storage
driver), and the default devices are bind-mounted from the host instead of being created
with mknod, so they keep working on the nodev /dev. A device node the step makes with
CAP_MKNOD can never be opened.

Network: ``host`` (no network namespace), ``none`` (a new, empty one) or ``private``
(join the build's namespace at ``netns_path``, see :mod:`network`).
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from ocibuild.errors import OcibuildError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def env_list_to_map(env: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


OCI_VERSION = "1.0.2"

# Docker/containerd default capabilities (moby oci/caps/defaults.go, containerd defaultUnixCaps).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# containerd's populateDefaultUnixSpec (what BuildKit inherits).
MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# BuildKit's executor/oci/mounts.go withROBind: generated /etc files are read-only binds.
ETC_FILE_OPTIONS: tuple[str, ...] = ("nosuid", "noexec", "nodev", "rbind", "ro")

MAX_ID = 2**32 - 2  # (uid_t)-1 is "no change" for the kernel


def _mount(dest: str, typ: str, source: str, options: Sequence[str] = ()) -> dict[str, Any]:
    m: dict[str, Any] = {"destination": dest, "type": typ, "source": source}
    if options:
        m["options"] = list(options)
    return m


# The devices runc and crun create by default; bound from the host (see the docstring).
DEFAULT_DEVICES: tuple[str, ...] = ("null", "zero", "full", "random", "urandom", "tty")
DEVICE_BIND_OPTIONS: tuple[str, ...] = ("bind", "nosuid", "noexec")

NETWORKS = ("host", "none", "private")


def default_mounts() -> list[dict[str, Any]]:
    """BuildKit's GetMounts (executor/oci/mounts.go), in order; /dev is ``nodev``."""
    return [
        _mount("/proc", "proc", "proc"),
        _mount(
            "/dev", "tmpfs", "tmpfs", ("nosuid", "nodev", "strictatime", "mode=755", "size=65536k")
        ),
        _mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
        ),
        _mount(
            "/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")
        ),
        _mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
        _mount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
    ]


def device_mounts() -> list[dict[str, Any]]:
    """The default devices, bound from the host's /dev."""
    return [_mount(f"/dev/{d}", "bind", f"/dev/{d}", DEVICE_BIND_OPTIONS) for d in DEFAULT_DEVICES]


def nodev(mount: Mapping[str, Any]) -> dict[str, Any]:
    """``mount`` with ``nodev`` added (a RUN --mount: no device node is usable in it)."""
    out = dict(mount)
    opts = [o for o in out.get("options", []) if o != "dev"]
    if "nodev" not in opts:
        opts.append("nodev")
    out["options"] = opts
    return out


_RLIMIT_NAMES = {
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
    "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as",
}  # fmt: skip


def _rlimit(name: str, soft: int, hard: int) -> dict[str, Any]:
    short = name.lower().removeprefix("rlimit_")
    if short not in _RLIMIT_NAMES:
        raise OcibuildError(f"unknown rlimit {name!r}")
    if soft < 0 or hard < 0 or soft > hard:
        raise OcibuildError(f"invalid rlimit {name}: soft {soft} must be <= hard {hard}")
    return {"type": "RLIMIT_" + short.upper(), "soft": soft, "hard": hard}


def _check_id(what: str, value: int) -> int:
    if not 0 <= value <= MAX_ID:
        raise OcibuildError(f"{what} {value} out of range 0-{MAX_ID}")
    return value


def make_spec(
    *,
    rootfs: str,
    args: Sequence[str],
    env: Sequence[str],
    cwd: str,
    uid: int,
    gid: int,
    additional_gids: Sequence[int],
    hostname: str,
    etc_files: Mapping[str, str],
    network: Literal["host", "none", "private"] = "host",
    netns_path: str | None = None,
    readonly_rootfs: bool = False,
    rlimits: Sequence[tuple[str, int, int]] = (),
    extra_mounts: Sequence[Mapping[str, Any]] = (),
    seccomp: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The runtime config for one RUN step.

    ``etc_files`` maps a container path ("/etc/hosts") to the host file bound there;
    ``rlimits`` are ``(name, soft, hard)`` with name like "nofile" or "RLIMIT_NOFILE";
    ``seccomp`` is the ``linux.seccomp`` object (:func:`seccomp.spec_seccomp`);
    ``netns_path`` the network namespace to join with ``network="private"``.
    """
    if not args:
        raise OcibuildError("empty command: nothing to run")
    if not cwd.startswith("/"):
        raise OcibuildError(f"working directory {cwd!r} must be absolute")
    if network not in NETWORKS:
        raise OcibuildError(f"unsupported network mode {network!r}")
    if (network == "private") != bool(netns_path):
        raise OcibuildError("a private network needs a network namespace path (and only it)")
    user: dict[str, Any] = {"uid": _check_id("uid", uid), "gid": _check_id("gid", gid)}
    if additional_gids:
        user["additionalGids"] = [_check_id("gid", g) for g in additional_gids]

    caps = list(DEFAULT_CAPABILITIES)
    process: dict[str, Any] = {
        "terminal": False,
        "user": user,
        "args": list(args),
        "env": list(env),
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": list(caps), "permitted": list(caps)},
        "noNewPrivileges": False,
    }
    if rlimits:
        process["rlimits"] = [_rlimit(*r) for r in rlimits]

    mounts = default_mounts()
    mounts.extend(device_mounts())
    for dest, src in etc_files.items():
        mounts.append(_mount(dest, "bind", src, ETC_FILE_OPTIONS))
    # RUN --mount, heredoc scripts; one on a default mount's destination (a tmpfs on
    # /dev/shm) replaces it instead of stacking on it, as BuildKit's dedupMounts does
    replaced = {str(m.get("destination")) for m in extra_mounts}
    mounts = [m for m in mounts if m["destination"] not in replaced]
    mounts.extend(nodev(m) for m in extra_mounts)
    mounts.append(_mount("/sys/fs/cgroup", "cgroup", "cgroup", ("ro", "nosuid", "noexec", "nodev")))

    namespaces: list[dict[str, Any]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if network == "none":
        namespaces.append({"type": "network"})
    elif network == "private":
        namespaces.append({"type": "network", "path": netns_path})

    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if seccomp is not None:
        linux["seccomp"] = copy.deepcopy(dict(seccomp))
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": readonly_rootfs},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    }


def with_nodev_rootfs_hook(
    spec: Mapping[str, Any],
    mount_binary: str,
    cat_binary: str = "cat",
    *,
    busybox: str | None = None,
) -> dict[str, Any]:
    """``spec`` plus a createContainer hook that makes the rootfs mount ``nodev`` again.

    crun remounts the rootfs with ``MS_REMOUNT|MS_BIND`` and no other flag while it
    prepares it, which clears the ``nodev`` the storage driver set (runc keeps it). The
    hook runs in the container's mount namespace after that and before pivot_root; when
    the remount fails, the hook fails and so does the container.

    With ``busybox``, the hook is that one binary: its shell, mount
    and cat applets (about 2 ms of CPU less per step than /bin/sh, util-linux's mount
    with its shared libraries, and cat); else ``mount_binary`` and ``cat_binary``.
    """
    out = dict(spec)  # (shallow: only "hooks" changes, and is a new object)
    root = str(out["root"]["path"])
    # crun writes the container state to the hook's stdin (with the annotations: the
    # seccomp program is 10 kB of it): a hook that exits without reading it can make crun
    # fail with "writing to pipe: Broken pipe", and the shell's `read` takes one syscall
    # per byte. cat drains it in one read, after the remount.
    if busybox:
        script = '"$0" mount -o remount,bind,nodev -- "$1" && exec "$0" cat >/dev/null'
        hook = {"path": busybox, "args": ["sh", "-c", script, busybox, root]}
    else:
        script = '"$0" -o remount,bind,nodev -- "$1" && exec "$2" >/dev/null'
        hook = {"path": "/bin/sh", "args": ["sh", "-c", script, mount_binary, root, cat_binary]}
    hooks = dict(out.get("hooks") or {})
    hooks["createContainer"] = [*hooks.get("createContainer", []), hook]
    out["hooks"] = hooks
    return out


CRUN_SECCOMP_ANNOTATION = "run.oci.seccomp_bpf_data"


def with_seccomp_program(spec: Mapping[str, Any], program: bytes) -> dict[str, Any]:
    """``spec`` plus crun's ``run.oci.seccomp_bpf_data`` annotation: ``program`` (the
    ``linux.seccomp`` of ``spec`` compiled by libseccomp, base64) is loaded as it is
    instead of crun compiling the profile again on every step.

    It is byte for byte the program crun 1.8 compiles from the same object (same
    libseccomp, same rule semantics; tests/runtime check it). ``linux.seccomp`` stays in
    the spec: crun still takes the filter flags from it, and a runtime that does not know
    the annotation applies the profile itself.
    """
    if "seccomp" not in spec.get("linux", {}):
        raise OcibuildError("a seccomp program without a linux.seccomp profile")
    out = dict(spec)  # (shallow: only "annotations" changes, and is a new object)
    annotations = dict(out.get("annotations") or {})
    annotations[CRUN_SECCOMP_ANNOTATION] = base64.b64encode(program).decode("ascii")
    out["annotations"] = annotations
    return out


def container_mount_destinations(spec: Mapping[str, Any]) -> list[str]:
    """Every mount destination in ``spec``, in mount order (for stub cleanup)."""
    return [str(m["destination"]) for m in spec.get("mounts", [])]


def rootless_variant(spec: Mapping[str, Any], gid_mapped: Callable[[int], bool]) -> dict[str, Any]:
    """``spec`` for a runtime started inside the build's user namespace (pure).

    As ``runc spec --rootless`` does: /sys becomes a read-only rbind (sysfs needs a network
    namespace owned by our user namespace), no cgroup mount, no device cgroup rules, and
    ``gid=`` options dropped when that gid is not mapped. No user namespace entry: the
    process is already in one, with the mappings the build entered. No device binds:
    in a user namespace runc and crun bind the default devices from the host themselves
    (runc would open our /dev/tty bind to "create" it, and fail with ENXIO).
    """
    out = copy.deepcopy(dict(spec))
    mounts = []
    devices = {f"/dev/{d}" for d in DEFAULT_DEVICES}
    for m in out.get("mounts", []):
        if m["destination"] in devices and m["type"] == "bind" and m["source"] in devices:
            continue
        if m["destination"] == "/sys":
            m = _mount("/sys", "bind", "/sys", ("rbind", "nosuid", "noexec", "nodev", "ro"))
        elif m["destination"] == "/sys/fs/cgroup":
            continue
        else:
            opts = [
                o
                for o in m.get("options", [])
                if not (o.startswith("gid=") and not gid_mapped(int(o[4:])))
            ]
            if "options" in m:
                m["options"] = opts
        mounts.append(m)
    out["mounts"] = mounts
    out.get("linux", {}).pop("resources", None)
    return out
