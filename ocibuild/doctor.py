"""System checks: what each isolation mode, storage driver and runtime needs.

``ocibuild doctor`` prints every finding with the command that fixes it; ``ocibuild build``
runs the checks its chosen mode requires (lazily, once) and fails early with the same
text. Each check reads the machine and never changes it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from collections.abc import Callable

from ocibuild import _record
from ocibuild._record import dataclass
from ocibuild.fs.idmap import read_subids
from ocibuild.runtime.runner import cgroup_layout, is_crun

MIN_USERNS = 15000
ROOTLESS_OVERLAY_KERNEL = (5, 13)


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = False
    applies: bool = True  # False: only matters for another mode (shown as info)

    @property
    def status(self) -> str:
        if self.ok:
            return "ok"
        if not self.applies:
            return "info"
        return "FAIL" if self.required else "warn"

    def message(self) -> str:
        return f"{self.name}: {self.detail}"


@dataclass(frozen=True)
class Needs:
    """What a mode needs: rootless user namespace, a runtime, a storage driver."""

    rootless: bool
    runtime: str | None  # None: native-chroot
    storage_driver: str  # overlay | fuse-overlayfs | vfs
    user: str
    uid: int
    gid: int


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def kernel_version(release: str | None = None) -> tuple[int, int]:
    text = release or os.uname().release
    parts = text.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def check_kernel(needs: Needs) -> Finding:
    version = kernel_version()
    shown = ".".join(map(str, version))
    if not needs.rootless:
        return Finding("kernel", True, f"Linux {os.uname().release}")
    ok = version >= ROOTLESS_OVERLAY_KERNEL
    return Finding(
        "kernel",
        ok,
        f"Linux {shown}: "
        + (
            "overlayfs mounts in a user namespace (5.13+)"
            if ok
            else "rootless kernel overlay needs 5.13+ (5.11+ on some distributions); "
            "fuse-overlayfs is used instead"
        ),
        "" if ok else "use --storage-driver fuse-overlayfs or vfs, or upgrade the kernel",
    )


def check_overlay(needs: Needs) -> Finding:
    fs = _read("/proc/filesystems") or ""
    ok = any(line.split()[-1] == "overlay" for line in fs.splitlines() if line.split())
    return Finding(
        "overlay module",
        ok,
        "overlayfs is available" if ok else "overlayfs is not in /proc/filesystems",
        "" if ok else "modprobe overlay",
        required=False,
    )


def check_fuse(needs: Needs) -> Finding:
    binary = shutil.which("fuse-overlayfs")
    required = needs.storage_driver == "fuse-overlayfs"
    if binary is None:
        return Finding(
            "fuse-overlayfs",
            False,
            "fuse-overlayfs is not installed",
            "apt-get install -y fuse-overlayfs",
            required,
        )
    try:
        st = os.stat("/dev/fuse")
    except OSError:
        fix = "--device /dev/fuse" if container_engine() else "modprobe fuse"
        return Finding("fuse-overlayfs", False, "/dev/fuse is missing", fix, required)
    if needs.rootless and st.st_mode & 0o006 != 0o006 and needs.uid != 0:
        return Finding(
            "fuse-overlayfs",
            False,
            f"/dev/fuse is mode {stat.S_IMODE(st.st_mode):04o}: an unprivileged user cannot "
            "open it",
            "chmod 666 /dev/fuse (as root)",
            required,
        )
    return Finding("fuse-overlayfs", True, f"{binary}, /dev/fuse usable")


def check_userns(needs: Needs) -> Finding:
    clone = _read("/proc/sys/kernel/unprivileged_userns_clone")
    if clone is not None and clone != "1":
        return Finding(
            "user namespaces",
            False,
            "kernel.unprivileged_userns_clone is 0",
            "sysctl -w kernel.unprivileged_userns_clone=1",
            needs.rootless,
        )
    maximum = _read("/proc/sys/user/max_user_namespaces")
    if maximum is None:
        return Finding(
            "user namespaces",
            False,
            "the kernel has no user namespaces",
            "rebuild the kernel with CONFIG_USER_NS=y",
            needs.rootless,
        )
    ok = int(maximum) >= MIN_USERNS
    return Finding(
        "user namespaces",
        ok,
        f"user.max_user_namespaces = {maximum}" + ("" if ok else f" (below {MIN_USERNS})"),
        "" if ok else f"sysctl -w user.max_user_namespaces={MIN_USERNS}",
        needs.rootless,
    )


def check_subids(needs: Needs) -> Finding:
    uids = read_subids("/etc/subuid", needs.user, needs.uid)
    gids = read_subids("/etc/subgid", needs.user, needs.uid)
    ok = bool(uids and gids)
    count = sum(r.count for r in uids)
    fix = f"usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {needs.user}"
    return Finding(
        "subordinate ids",
        ok,
        f"{count} uids / {sum(r.count for r in gids)} gids for {needs.user} in "
        "/etc/subuid and /etc/subgid"
        if ok
        else f"no ranges for {needs.user} in /etc/subuid and /etc/subgid: a single-id "
        "mapping (only root inside) is used",
        "" if ok else fix,
    )


def check_newidmap(needs: Needs) -> Finding:
    missing = []
    for name in ("newuidmap", "newgidmap"):
        path = shutil.which(name)
        if path is None:
            missing.append(f"{name} is not installed")
            continue
        st = os.stat(path)
        if not st.st_mode & stat.S_ISUID and not _has_file_caps(path):
            missing.append(f"{path} is neither setuid nor has file capabilities")
    ok = not missing
    return Finding(
        "newuidmap/newgidmap",
        ok,
        "installed" if ok else "; ".join(missing) + ": a single-id mapping is used",
        "" if ok else "apt-get install -y uidmap",
    )


def _has_file_caps(path: str) -> bool:
    try:
        return bool(os.getxattr(path, "security.capability"))
    except OSError:
        return False


def check_runtime(needs: Needs, runtime: str) -> Finding:
    required = needs.runtime == runtime
    path = shutil.which(runtime)
    name = os.path.basename(runtime)
    if path is None:
        return Finding(
            name,
            False,
            f"{runtime} is not installed" + ("" if required else " (not needed here)"),
            f"apt-get install -y {name}"
            + ("" if not required else " (or use --isolation native-chroot)"),
            required,
        )
    detail = path
    if is_crun(runtime) and cgroup_layout() == "hybrid":
        detail += (
            " (hybrid cgroups: run with --cgroup-manager=disabled in a private mount "
            "namespace where /sys/fs/cgroup/unified is bound over /sys/fs/cgroup)"
        )
    return Finding(name, True, detail)


# -- inside a container ----------------------------------------------------------------------

ENGINE_PROFILE_HINT = (
    "--security-opt seccomp=ocibuild-in-container.json (`python3 -m ocibuild.engine "
    "seccomp-profile FILE` writes it: Docker's default plus unshare, mount, pivot_root...)"
)


def container_engine() -> str | None:
    """The engine this process runs under (podman, docker, kubernetes, a container), or
    None outside any container."""
    if os.path.exists("/run/.containerenv"):
        return "podman"
    if os.path.exists("/.dockerenv"):
        return "docker"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    engine = os.environ.get("container")  # noqa: SIM112 - systemd's name, lower case
    if engine:
        return engine
    return None


def _status_field(name: str) -> str:
    for line in (_read("/proc/self/status") or "").splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    return ""


def probe_userns() -> int:
    """0 when this process can create a user namespace, else the errno unshare gave
    (in a forked child: this process is not changed)."""
    from ocibuild import _native

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            _native.unshare(_native.CLONE_NEWUSER)
            os._exit(0)
        except OSError as exc:
            os._exit(min(exc.errno or 1, 255))
        except BaseException:
            os._exit(255)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def userns_diagnosis(code: int) -> tuple[str, str]:
    """(what refuses unshare(CLONE_NEWUSER), the fix) for the errno ``code`` it gave."""
    why = os.strerror(code) if 0 < code < 255 else f"status {code}"
    maximum = _read("/proc/sys/user/max_user_namespaces")
    engine = container_engine()
    if maximum == "0":
        return (
            f"unshare(CLONE_NEWUSER): {why}: user.max_user_namespaces is 0",
            f"sysctl -w user.max_user_namespaces={MIN_USERNS}"
            + (" on the host (a container cannot change it)" if engine else ""),
        )
    if _status_field("Seccomp") == "2":
        fix = (
            ENGINE_PROFILE_HINT
            if engine != "kubernetes"
            else "securityContext.seccompProfile: {type: Localhost, localhostProfile: "
            "ocibuild-in-container.json} (see examples/kubernetes/)"
        )
        return (
            f"unshare(CLONE_NEWUSER): {why}: a seccomp filter refuses it"
            + (f" (the {engine} default profile?)" if engine else ""),
            fix,
        )
    return f"unshare(CLONE_NEWUSER): {why}", "`ocibuild doctor` lists what is missing"


def userns_blocked(needs: Needs) -> Finding:
    """Whether unshare(CLONE_NEWUSER) works here, and if not, what refuses it."""
    name = "user namespace creation"
    if in_user_namespace_already():
        return Finding(name, True, "inside the build's user namespace")
    code = probe_userns()
    if code == 0:
        return Finding(name, True, "unshare(CLONE_NEWUSER) works")
    detail, fix = userns_diagnosis(code)
    return Finding(name, False, detail, fix, needs.rootless)


def in_user_namespace_already() -> bool:
    from ocibuild.fs.idmap import in_user_namespace

    return in_user_namespace()


def check_proc_masks(needs: Needs) -> Finding:
    """A user namespace mounts a fresh /proc (the RUN step's) only where nothing of the
    container's /proc is masked or read-only (the kernel's mount_too_revealing)."""
    name = "/proc masks"
    masked = []
    for line in (_read("/proc/self/mountinfo") or "").splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4].startswith("/proc/"):
            target = fields[4]
            if target.startswith("/proc/sys/fs/binfmt_misc"):
                continue  # an empty procfs directory: allowed
            masked.append(target)
    if not masked:
        return Finding(name, True, "nothing of /proc is masked: RUN steps can mount /proc")
    engine = container_engine()
    fix = {
        "podman": "--security-opt unmask=/proc/*",
        "docker": "--security-opt systempaths=unconfined",
        "kubernetes": "securityContext.procMount: Unmasked (with hostUsers: false)",
    }.get(
        engine or "",
        "podman: --security-opt unmask=/proc/*; docker: --security-opt systempaths=unconfined",
    )
    shown = ", ".join(masked[:4]) + (f" and {len(masked) - 4} more" if len(masked) > 4 else "")
    return Finding(
        name,
        False,
        f"the container masks or makes read-only {shown}: a user namespace cannot mount a "
        "fresh /proc for RUN steps",
        fix,
        needs.rootless,
    )


def check_apparmor(needs: Needs) -> Finding:
    name = "AppArmor"
    label = _read("/proc/self/attr/apparmor/current") or _read("/proc/self/attr/current") or ""
    if not label or label.startswith("unconfined"):
        return Finding(name, True, label or "not confined")
    return Finding(
        name,
        False,
        f"confined by {label}: the engines' default profiles deny mount",
        "--security-opt apparmor=unconfined (or a profile that allows mount); Kubernetes: "
        "securityContext.appArmorProfile: {type: Unconfined}",
        needs.rootless,
    )


def check_container_devices(needs: Needs) -> list[Finding]:
    found = []
    if os.path.exists("/dev/fuse"):
        found.append(Finding("/dev/fuse", True, "present"))
    else:
        found.append(
            Finding(
                "/dev/fuse",
                False,
                "missing: fuse-overlayfs cannot run (kernel overlay or vfs is used)",
                "--device /dev/fuse (Kubernetes: a device plugin, see examples/kubernetes/)",
                needs.storage_driver == "fuse-overlayfs",
            )
        )
    if os.path.exists("/dev/net/tun"):
        found.append(Finding("/dev/net/tun", True, "present"))
    else:
        found.append(
            Finding(
                "/dev/net/tun",
                False,
                "missing: RUN steps' own network (slirp4netns) cannot start",
                "--device /dev/net/tun, or build with --network host (the container's network)",
            )
        )
    return found


def container_checks(needs: Needs) -> list[Finding]:
    """What a build inside a container needs from its engine (empty outside one)."""
    engine = container_engine()
    if engine is None:
        return []
    found = [Finding("container", True, f"running inside {engine}")]
    found += check_container_devices(needs)
    if needs.rootless:
        found += [userns_blocked(needs), check_proc_masks(needs), check_apparmor(needs)]
    return found


def run_checks(needs: Needs) -> list[Finding]:
    """Every finding for ``needs`` (required ones are marked)."""
    runtimes = [needs.runtime] if needs.runtime else []
    runtimes += [r for r in ("runc", "crun") if not runtimes or os.path.basename(runtimes[0]) != r]
    checks: list[Callable[[Needs], Finding]] = [check_kernel, check_overlay, check_fuse]
    found = [c(needs) for c in checks]
    for check in (check_userns, check_subids, check_newidmap):
        finding = check(needs)
        if not needs.rootless:
            finding = _record.replace(finding, applies=False)
        found.append(finding)
    found += [check_runtime(needs, r) for r in runtimes]
    return found + container_checks(needs)


def first_failure(needs: Needs) -> Finding | None:
    for finding in run_checks(needs):
        if finding.required and not finding.ok:
            return finding
    return None


def login_of(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_platform(text: str) -> Finding:
    """Whether programs of platform ``text`` run here: natively, or through a QEMU
    emulator registered in binfmt_misc with the fix-binary flag (what RUN needs)."""
    from ocibuild.errors import OcibuildError
    from ocibuild.platforms import QEMU_NAMES, find_emulator, parse_platform, runnable_problem

    try:
        target = parse_platform(text)
    except OcibuildError as exc:
        return Finding(f"platform {text}", False, exc.message, exc.hint or "", True)
    name = f"platform {target}"
    problem = runnable_problem(target)
    if problem is not None:
        return Finding(name, False, problem[0], problem[1], True)
    emulator = find_emulator(target.architecture)
    qemu = QEMU_NAMES.get(target.architecture, target.architecture)
    if emulator is None or runnable_problem(target, "/nonexistent") is None:
        return Finding(name, True, "runs natively on this machine")
    return Finding(
        name,
        True,
        f"runs through the emulator qemu-{qemu} ({emulator.interpreter}, registered in "
        "binfmt_misc with the fix-binary flag)",
    )
