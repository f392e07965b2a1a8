"""ocibuild's own host-side code after a RUN step: what the step planted in the upper dir
(symlinks in place of stub parents) is never followed out to the host."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from hardening.layers import simple_tar
from tests.conftest import Ocibuild, read_layout

MODES = {
    "runc": [],
    "crun": ["--runtime", "crun"],
    "native-chroot": ["--isolation", "native-chroot"],
    "vfs": ["--storage-driver", "vfs"],
}


def snapshot(top: Path) -> dict[str, tuple[int, int, bytes | str | None]]:
    """Every entry below ``top`` (itself included): type and mode, mtime, content."""
    out: dict[str, tuple[int, int, bytes | str | None]] = {}
    for path in [top, *sorted(top.rglob("*"))]:
        st = path.lstat()
        data: bytes | str | None = None
        if stat.S_ISREG(st.st_mode):
            data = path.read_bytes()
        elif stat.S_ISLNK(st.st_mode):
            data = os.readlink(path)
        out[str(path.relative_to(top))] = (st.st_mode, st.st_mtime_ns, data)
    return out


def make_canary(tmp_path: Path) -> Path:
    """A host dir shaped like what stub cleanup would delete: an empty dir and an empty
    file named as the stubs, plus a file with content."""
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "target").mkdir()
    (canary / "empty").write_bytes(b"")
    (canary / "data").write_text("host data\n")
    for p in (canary / "target", canary / "empty", canary / "data", canary):
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    return canary


@pytest.mark.parametrize("mode", list(MODES))
def test_stub_parent_swapped_for_host_symlink(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path, mode: str
) -> None:
    if mode == "crun" and shutil.which("crun") is None:
        pytest.skip("crun is not installed (make system installs it)")
    canary = make_canary(tmp_path)
    before = snapshot(canary)
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\n"
        # /a, /a/b and /a/b/target are stubs the runtime creates for the bind mount; the
        # step moves the stubs' parent away and puts a link to the host canary there.
        "RUN --mount=type=bind,target=/a/b/target --mount=type=tmpfs,target=/a/b/empty"
        f" mv /a/b /a/c && ln -s {canary} /a/b\n"
        # an existing dir (/tmp) that gets a stub in it, replaced by a link as well
        "RUN --mount=type=bind,target=/tmp/x/target"
        f" mv /tmp/x /tmp/y && ln -s {canary} /tmp/x\n"
    )
    out = tmp_path / "layout"
    ocb.build(context, *MODES[mode], "--output", f"type=oci,dest={out}")
    assert snapshot(canary) == before, "the host dir the links point to is untouched"
    layout = read_layout(out)
    n = len(layout.manifest["layers"])
    first = {m.name: m for m in layout.layer_members(n - 2)}
    # BuildKit (executor/stubs.go) re-resolves each stub inside the rootfs: through the
    # link it names a path that does not exist, so nothing is removed there; the stubs
    # the step moved away are no longer stubs at their recorded paths either.
    assert first["a/b"].issym() and first["a/b"].linkname == str(canary)
    assert first["a/c"].isdir() and first["a/c/target"].isdir()
    assert first["a/c/empty"].isdir()
    second = {m.name: m for m in layout.layer_members(n - 1)}
    assert second["tmp/x"].issym() and second["tmp/x"].linkname == str(canary)
    assert second["tmp/y/target"].isdir()


def test_vfs_existing_parent_swapped_for_host_symlink(
    ocb: Ocibuild, base_image: str, context: Path, tmp_path: Path
) -> None:
    canary = make_canary(tmp_path)
    before = snapshot(canary)
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\n"
        # vfs: the rootfs is its own upper dir and /tmp (which gets the stub /tmp/x) has
        # its times restored after the run; the step puts a link to the host there.
        f"RUN --mount=type=bind,target=/tmp/x/target mv /tmp /tmp2 && ln -s {canary} /tmp\n"
    )
    ocb.build(context, "--storage-driver", "vfs", "-t", "t-vfs-parent-link")
    assert snapshot(canary) == before
    assert ocb.run("t-vfs-parent-link", "readlink", "/tmp").stdout == f"{canary}\n"


def test_add_archive_is_confined_to_its_destination(
    ocb: Ocibuild, base_image: str, context: Path
) -> None:
    # BuildKit unpacks an ADD archive with the destination as its root: "up -> .." then
    # "up/etc/x" writes /dest/etc/x, and an absolute link is the destination's own path.
    (context / "evil.tar.gz").write_bytes(
        simple_tar(
            [
                ("up", b"", ".."),
                ("up/etc/x", b"through up\n", ""),
                ("abs", b"", "/etc"),
                ("abs/passwd", b"pwned\n", ""),
            ],
            gz=True,
        )
    )
    (context / "Dockerfile").write_text(f"FROM {base_image}\nADD evil.tar.gz /dest/\n")
    ocb.build(context, "-t", "t-add-confined")
    res = ocb.run(
        "t-add-confined",
        "sh",
        "-c",
        "cat /dest/etc/x /dest/etc/passwd; readlink /dest/up; readlink /dest/abs;"
        " ls /etc/x 2>&1; grep -c root /etc/passwd",
    )
    assert res.stdout.splitlines() == [
        "through up",
        "pwned",
        "..",
        "/etc",
        "ls: /etc/x: No such file or directory",
        "1",
    ]
