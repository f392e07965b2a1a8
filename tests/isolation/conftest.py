"""Fixtures for the isolation tests: a test user with subordinate ids, matrix contexts.

The rootless tests run ocibuild as an unprivileged user the fixtures create (``ocbiso``,
with /etc/subuid and /etc/subgid ranges; ``ocbiso1`` without any). /dev/fuse is opened
up (``chmod 666``) for the session, as the machine notes explain, and restored after;
so is /dev/net/tun (slirp4netns, the RUN steps' network).
The venv's interpreter may live where that user cannot read it (/root/.pyenv); then the
system python3 of the same version runs the package with PYTHONPATH set.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hardening import modes

REPO = Path(__file__).resolve().parents[2]
USER = "ocbiso"
USER_NO_SUBIDS = "ocbiso1"
EPOCH = "1700000000"

BASE = """\
FROM scratch
COPY busybox setx /bin/
COPY passwd group /etc/
RUN ["/bin/busybox", "--install", "-s", "/bin"]
"""

# Whiteouts (file, dir, opaque dir), a same-size same-mtime rewrite, hardlinks, ownership
# through COPY --chown and USER, setuid/setgid bits, a user.* xattr, a fifo, a symlink.
MATRIX = """\
FROM mxbase
COPY --chown=1000:1000 data /w/u/
RUN mkdir -p /w/d/sub /w/gone/x && echo a > /w/a && echo b > /w/d/b && echo c > /w/d/sub/c \\
 && echo del > /w/del && echo same1 > /w/same && touch -d @1000 /w/same && echo x > /w/gone/x/y
RUN rm /w/del && rm -rf /w/gone /w/d && mkdir /w/d && echo n > /w/d/n \\
 && echo same2 > /w/same && touch -d @1000 /w/same \\
 && echo h > /w/h1 && ln /w/h1 /w/h2 && chmod 4755 /w/a && mkdir /w/g && chmod 2775 /w/g \\
 && mkfifo /w/fifo && setx user.test hello /w/a && ln -s ../a /w/d/link
USER 1000
RUN echo u > /w/u/userfile && mkdir /w/u/dir
USER 0
RUN touch /w/u/f && chmod 600 /w/d/n
"""

SETX_C = r"""
#include <string.h>
#include <sys/xattr.h>
int main(int c, char **v)
{
    return c == 4 && setxattr(v[3], v[1], v[2], strlen(v[2]), 0) == 0 ? 0 : 1;
}
"""


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def image_id(self) -> str:
        lines = self.stdout.strip().splitlines()
        return lines[-1] if lines else ""


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the isolation tests create a user and run as root and as that user")


def python_for_others() -> tuple[str, dict[str, str]]:
    """An interpreter an unprivileged user can execute, and the env it needs."""
    try:
        return modes.python_for_others()
    except modes.Unavailable as exc:
        pytest.skip(str(exc))


def ensure_user(name: str, subids: bool) -> pwd.struct_passwd:
    return modes.ensure_user(name, subids)


@pytest.fixture(scope="session")
def open_fuse() -> Iterator[None]:
    require_root()
    try:
        mode = os.stat("/dev/fuse").st_mode & 0o7777
    except FileNotFoundError:
        yield
        return
    os.chmod("/dev/fuse", 0o666)
    try:
        yield
    finally:
        os.chmod("/dev/fuse", mode)


@pytest.fixture(scope="session")
def open_tun() -> Iterator[None]:
    """/dev/net/tun for slirp4netns run by an unprivileged build (the RUN steps' own
    network): 0600 on this machine, 0666 on most distributions; restored after."""
    require_root()
    try:
        mode = os.stat("/dev/net/tun").st_mode & 0o7777
    except FileNotFoundError:
        yield
        return
    os.chmod("/dev/net/tun", 0o666)
    try:
        yield
    finally:
        os.chmod("/dev/net/tun", mode)


class Builder:
    """The ocibuild CLI as root or as a test user, against one store."""

    def __init__(self, user: str | None, store: Path) -> None:
        self.user = user
        self.store = store

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> Run:
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "SOURCE_DATE_EPOCH": EPOCH,
            "LANG": "C.UTF-8",
        }
        if self.user is None:
            cmd = [sys.executable, "-m", "ocibuild", *args]
            env["OCIBUILD_ROOT"] = str(self.store)
            env["PYTHONPATH"] = str(REPO)
        else:
            python, extra = python_for_others()
            entry = pwd.getpwnam(self.user)
            env.update(extra)
            env.update({"HOME": entry.pw_dir, "USER": self.user, "LOGNAME": self.user})
            env["XDG_DATA_HOME"] = str(self.store)
            cmd = ["runuser", "-u", self.user, "--", "env", *_kv(env), python]
            cmd += ["-m", "ocibuild", *args]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd="/",
        )
        result = Run(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"ocibuild {' '.join(args)} ({self.user or 'root'}) exited "
                f"{proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return result


def _kv(env: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()]


@pytest.fixture(scope="session")
def shared_dir() -> Iterator[Path]:
    """A world-readable scratch dir (pytest's tmp dirs are private to root)."""
    require_root()
    path = Path(tempfile.mkdtemp(prefix="ocibuild-iso-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def matrix_context(shared_dir: Path) -> Path:
    """Build context for the matrix: static busybox, a static setxattr helper, /etc."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        pytest.skip("busybox-static is not installed (make setup installs it)")
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (make setup installs it)")
    ctx = shared_dir / "ctx"
    (ctx / "data").mkdir(parents=True)
    shutil.copy(busybox, ctx / "busybox")
    (ctx / "setx.c").write_text(SETX_C)
    subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(ctx / "setx"), str(ctx / "setx.c")],
        check=True,
        capture_output=True,
    )
    (ctx / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n")
    (ctx / "group").write_text("root:x:0:\nu:x:1000:\n")
    (ctx / "data" / "f").write_text("d\n")
    (ctx / "Dockerfile.base").write_text(BASE)
    (ctx / "Dockerfile").write_text(MATRIX)
    for path in [ctx, *ctx.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    return ctx


@pytest.fixture(scope="session")
def root_builder(shared_dir: Path) -> Builder:
    return Builder(None, shared_dir / "root-store")


@pytest.fixture(scope="session")
def rootless_builder(shared_dir: Path, open_fuse: None, open_tun: None) -> Builder:
    entry = ensure_user(USER, subids=True)
    data = shared_dir / "rootless-data"
    data.mkdir()
    os.chown(data, entry.pw_uid, entry.pw_gid)
    return Builder(USER, data)


@pytest.fixture(scope="session")
def single_id_builder(shared_dir: Path, open_tun: None) -> Builder:
    entry = ensure_user(USER_NO_SUBIDS, subids=False)
    data = shared_dir / "single-data"
    data.mkdir()
    os.chown(data, entry.pw_uid, entry.pw_gid)
    return Builder(USER_NO_SUBIDS, data)
