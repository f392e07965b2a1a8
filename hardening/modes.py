"""The sandbox modes the attack suite runs in, and running the real CLI in each of them.

A mode is who runs ocibuild (root, or an unprivileged user with /etc/subuid and
/etc/subgid ranges) and which sandbox runs RUN steps (runc, crun, the native-chroot
helper). The rootless user is ``ocbiso`` (the same user tests/isolation creates); it runs
the package with an interpreter it can execute (Debian's python3 when the venv's lives in
a private directory) and PYTHONPATH pointing at this checkout.

Plain module (no pytest): the campaign runner (``python -m hardening.escapes``) and the
tests (tests/hardening/test_escapes.py) both import it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
USER = "ocbiso"
EPOCH = "1700000000"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Unavailable(Exception):
    """This machine cannot run a mode (the reason is the message)."""


@dataclass(frozen=True)
class Mode:
    """One sandbox configuration: who builds and with which flags."""

    name: str
    rootless: bool
    flags: tuple[str, ...]
    runtime: str | None  # runc / crun, None for the native helper

    def why_unavailable(self) -> str | None:
        if os.geteuid() != 0:
            return "the suite runs as root (it creates the rootless user and host canaries)"
        if self.runtime and shutil.which(self.runtime) is None:
            return f"{self.runtime} is not installed (make setup installs it)"
        if self.rootless:
            for tool in ("newuidmap", "newgidmap", "runuser"):
                if shutil.which(tool) is None:
                    return f"{tool} is not installed (uidmap / util-linux)"
            try:
                python_for_others()
            except Unavailable as e:
                return str(e)
        return None


MODES: tuple[Mode, ...] = (
    Mode("oci-runc", False, ("--isolation", "oci", "--runtime", "runc"), "runc"),
    Mode("oci-crun", False, ("--isolation", "oci", "--runtime", "crun"), "crun"),
    Mode("native-chroot", False, ("--isolation", "native-chroot"), None),
    Mode("rootless-runc", True, ("--isolation", "native-rootless", "--runtime", "runc"), "runc"),
    Mode("rootless-crun", True, ("--isolation", "native-rootless", "--runtime", "crun"), "crun"),
    Mode("rootless-native", True, ("--isolation", "native-chroot"), None),
)
MODE_NAMES = tuple(m.name for m in MODES)
DRIVERS = ("overlay", "fuse-overlayfs", "vfs")


def mode(name: str) -> Mode:
    for m in MODES:
        if m.name == name:
            return m
    raise KeyError(name)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def python_for_others() -> tuple[str, dict[str, str]]:
    """An interpreter an unprivileged user can execute, and the env it needs."""
    exe = os.path.realpath(sys.executable)
    if _world_executable(exe):
        return sys.executable, {"PYTHONPATH": str(REPO)}
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(f"python{version}", path="/usr/bin:/usr/local/bin")
    if system is None:
        raise Unavailable(f"no python{version} an unprivileged user can run ({exe} is private)")
    site = sysconfig.get_paths()["purelib"]
    return system, {"PYTHONPATH": f"{REPO}:{site}"}


def _parents(path: str) -> list[str]:
    out = []
    while path not in ("/", ""):
        path = os.path.dirname(path)
        out.append(path)
    return out


def _world_executable(path: str) -> bool:
    if not os.stat(path).st_mode & 0o001:
        return False
    return all(os.stat(p).st_mode & 0o001 for p in _parents(path))


def ensure_user(name: str = USER, subids: bool = True) -> pwd.struct_passwd:
    """An unprivileged test user (created when missing), with subordinate id ranges, or
    explicitly without any when ``subids`` is false."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        cmd = ["useradd", "-m", "-s", "/bin/sh", name]
        if not subids:
            cmd[1:1] = ["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode not in (0, 9):  # 9: created meanwhile by a parallel run
            raise Unavailable(f"useradd {name}: {proc.stderr.strip()}") from None
        entry = pwd.getpwnam(name)
    for path in ("/etc/subuid", "/etc/subgid"):
        text = Path(path).read_text() if os.path.exists(path) else ""
        has = any(line.split(":")[0] == name for line in text.splitlines())
        if subids and not has:
            flag = "--add-subuids" if path.endswith("uid") else "--add-subgids"
            subprocess.run(["usermod", flag, "300000-365535", name], check=True)
        if not subids and has:
            kept = [ln for ln in text.splitlines() if ln.split(":")[0] != name]
            Path(path).write_text("".join(ln + "\n" for ln in kept))
    return entry


# Device nodes an unprivileged build needs and this machine ships 0600: fuse-overlayfs
# needs /dev/fuse, slirp4netns (a RUN step's own network) /dev/net/tun.
USER_DEVICES = ("/dev/fuse", "/dev/net/tun")
_opened: dict[str, int] = {}


def open_devices() -> None:
    """Make USER_DEVICES 0666 for the campaign (as tests/isolation does); the original
    modes are restored by :func:`restore_devices`."""
    for path in USER_DEVICES:
        if os.path.exists(path) and path not in _opened:
            mode = os.stat(path).st_mode & 0o7777
            _opened[path] = mode
            os.chmod(path, mode | 0o666)


def restore_devices() -> None:
    for path, mode in list(_opened.items()):
        with contextlib.suppress(OSError):
            os.chmod(path, mode)
        del _opened[path]


@dataclass
class Cli:
    """The ocibuild command line in one mode, against one store."""

    mode: Mode
    store: Path
    user: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def command(
        self, args: Sequence[str], wrap: Sequence[str] = ()
    ) -> tuple[list[str], dict[str, str]]:
        env = {"PATH": PATH, "SOURCE_DATE_EPOCH": EPOCH, "LANG": "C.UTF-8", **self.env}
        if self.user is None:
            env["OCIBUILD_ROOT"] = str(self.store)
            env["PYTHONPATH"] = str(REPO)
            return [*wrap, sys.executable, "-m", "ocibuild", *args], env
        python, extra = python_for_others()
        entry = pwd.getpwnam(self.user)
        env.update(extra)
        env.update({"HOME": entry.pw_dir, "USER": self.user, "LOGNAME": self.user})
        env["XDG_DATA_HOME"] = str(self.store)
        kv = [f"{k}={v}" for k, v in env.items()]
        cmd = ["runuser", "-u", self.user, "--", "env", *kv, *wrap, python, "-m", "ocibuild"]
        return [*cmd, *args], env

    def __call__(
        self,
        *args: str,
        wrap: Sequence[str] = (),
        outer: Sequence[str] = (),
        timeout: float = 180,
        cwd: str = "/",
    ) -> Run:
        """Run ocibuild; ``wrap`` goes right before the interpreter (as the mode's user),
        ``outer`` before everything (as root, e.g. ``unshare --net``)."""
        cmd, env = self.command(args, wrap)
        cmd = [*outer, *cmd]
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
            )
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            return Run(124, out, f"timed out after {timeout} s")
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def build(
        self,
        context: Path,
        *args: str,
        driver: str = "overlay",
        wrap: Sequence[str] = (),
        outer: Sequence[str] = (),
        timeout: float = 180,
    ) -> Run:
        flags = [*self.mode.flags, "--storage-driver", driver]
        return self("build", *flags, *args, str(context), wrap=wrap, outer=outer, timeout=timeout)


def make_cli(m: Mode, workdir: Path) -> Cli:
    """A Cli for ``m`` with its own store under ``workdir`` (owned by the mode's user)."""
    reason = m.why_unavailable()
    if reason:
        raise Unavailable(reason)
    store = workdir / f"store-{m.name}"
    if not m.rootless:
        store.mkdir(parents=True, exist_ok=True)
        return Cli(m, store)
    entry = ensure_user()
    open_devices()
    store.mkdir(parents=True, exist_ok=True)
    os.chown(store, entry.pw_uid, entry.pw_gid)
    return Cli(m, store, USER)
