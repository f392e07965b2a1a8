"""The base images both builders start from, built once and cached as OCI layouts.

- ``busybox``: busybox-static with its applet links, /etc/passwd and /etc/group (root,
  app 1000, nobody), /tmp, /root, /home/app, and the mount points the runtimes use
  (/proc, /sys, /dev, /etc/hosts, /etc/resolv.conf, /run) so no builder has to create
  them.
- ``debian``: ``debootstrap --variant=minbase bookworm`` (about 200 MB, made once).

Cache: ``$OCIBUILD_CONFORMANCE_CACHE`` or ``/var/tmp/ocibuild-conformance``, shared by
every worktree on the machine: making a layout holds an exclusive lock on ``CACHE/.lock``
so two runs never debootstrap into the same directory at once.

The golden files record the diffID of the base each was made from; the busybox layout is
byte-reproducible (fixed mtimes, the Debian busybox-static binary), the Debian one depends
on the packages debootstrap fetched that day (only its cases can notice).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

from conformance.layout import write_layout

CACHE = Path(os.environ.get("OCIBUILD_CONFORMANCE_CACHE", "/var/tmp/ocibuild-conformance"))
BUSYBOX = "/bin/busybox"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EPOCH = 1_700_000_000
VERSION = "5"
HISTORY = [
    {"created": "2023-11-14T22:13:20Z", "created_by": "ocibuild conformance base"}
]  # bump to rebuild the cached layouts

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """\
root:x:0:
daemon:x:1:
app:x:1000:
extra:x:2000:app
nogroup:x:65534:
"""


def _tarinfo(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, uid, gid, EPOCH
    return ti


def _busybox_tar(path: Path) -> None:
    applets = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True, check=True)
    dirs = {"bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
            "etc": 0o755, "tmp": 0o1777, "root": 0o700, "home": 0o755, "proc": 0o555,
            "sys": 0o555, "dev": 0o755, "run": 0o755, "var": 0o755, "var/tmp": 0o1777,
            "mnt": 0o755, "opt": 0o755}  # fmt: skip
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, mode in sorted(dirs.items()):
            tf.addfile(_tarinfo(name, tarfile.DIRTYPE, mode))
        tf.addfile(_tarinfo("home/app", tarfile.DIRTYPE, 0o755, 1000, 1000))
        data = Path(BUSYBOX).read_bytes()
        ti = _tarinfo("bin/busybox", tarfile.REGTYPE, 0o755)
        ti.size = len(data)
        import io

        tf.addfile(ti, io.BytesIO(data))
        for text, name in ((PASSWD, "etc/passwd"), (GROUP, "etc/group"), ("", "etc/hosts"),
                           ("", "etc/resolv.conf"), ("", "etc/hostname")):  # fmt: skip
            raw = text.encode()
            ti = _tarinfo(name, tarfile.REGTYPE, 0o644)
            ti.size = len(raw)
            tf.addfile(ti, io.BytesIO(raw))
        for line in sorted(set(applets.stdout.split())):
            name = line.lstrip("/")
            if name in ("bin/busybox",) or name.count("/") > 2:
                continue
            link = _tarinfo(name, tarfile.SYMTYPE, 0o777)
            link.linkname = "/bin/busybox"
            tf.addfile(link)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def busybox_layout() -> Path:
    dest = CACHE / f"busybox-v{VERSION}"
    if (dest / "index.json").exists():
        return dest
    with _locked():
        if not (dest / "index.json").exists():
            _make_busybox(dest)
    return dest


def _make_busybox(dest: Path) -> None:
    tmp = CACHE / f"busybox-v{VERSION}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tar = tmp / "layer.tar"
    _busybox_tar(tar)
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": [f"PATH={PATH}"], "Cmd": ["sh"]}, "history": HISTORY}  # fmt: skip
    write_layout(tmp / "layout", tar, config, "latest")
    os.replace(tmp / "layout", dest)
    shutil.rmtree(tmp, ignore_errors=True)


def debian_layout() -> Path:
    dest = CACHE / f"debian-v{VERSION}"
    if (dest / "index.json").exists():
        return dest
    with _locked():
        if not (dest / "index.json").exists():
            _make_debian(dest)
    return dest


def _make_debian(dest: Path) -> None:
    root = CACHE / "debian-root"
    if not (root / "etc" / "debian_version").exists():
        tmp_root = CACHE / "debian-root.tmp"
        shutil.rmtree(tmp_root, ignore_errors=True)
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(tmp_root)],
            check=True, capture_output=True,
        )  # fmt: skip
        os.replace(tmp_root, root)
    for name in ("hosts", "resolv.conf", "hostname"):  # mount points every runtime uses
        (root / "etc" / name).touch()
    tmp = CACHE / f"debian-v{VERSION}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tar = tmp / "layer.tar"
    excludes = ["./var/cache/apt/archives/*.deb", "./var/lib/apt/lists/*", "./proc/*", "./sys/*"]
    subprocess.run(
        ["tar", "--numeric-owner", "--xattrs", "--sort=name", f"--mtime=@{EPOCH}",
         *[f"--exclude={e}" for e in excludes], "-C", str(root), "-cf", str(tar), "."],
        check=True,
    )  # fmt: skip
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": [f"PATH={PATH}"], "Cmd": ["bash"]}, "history": HISTORY}  # fmt: skip
    write_layout(tmp / "layout", tar, config, "bookworm")
    os.replace(tmp / "layout", dest)
    shutil.rmtree(tmp, ignore_errors=True)
