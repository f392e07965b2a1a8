"""write_tree: entries, order, metadata, whiteouts from a real overlay upper dir."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from ocibuild.errors import LayerError
from ocibuild.layers.apply import apply_layer
from ocibuild.layers.diff import digest_upper
from ocibuild.layers.tarwriter import write_tree

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown, xattrs)")
# A file capability blob for cap_net_bind_service=+ep (VFS_CAP_REVISION_2).
CAP = bytes.fromhex("0100000200040000000000000000000000000000")


def tar_of(path: Path, mode: str = "plain", epoch: int | None = None) -> bytes:
    out = io.BytesIO()
    stats = write_tree(str(path), out, mode=mode, source_date_epoch=epoch)  # type: ignore[arg-type]
    assert stats.tar_bytes == len(out.getvalue())
    return out.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), encoding="utf-8", errors="surrogateescape") as tf:
        return tf.getmembers()


def raw_names(data: bytes) -> list[str]:
    """Names as written (tarfile strips the trailing '/' of dirs; the raw header keeps it)."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf:
            out.append(m.name + ("/" if m.isdir() else ""))
    return out


def test_entries_order_and_names(tmp_path: Path) -> None:
    for rel in ["b/c/d", "a-b", "a/x", "b/c/e"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    data = tar_of(tmp_path)
    names = raw_names(data)
    assert names == ["a/", "a/x", "a-b", "b/", "b/c/", "b/c/d", "b/c/e"]
    assert all(not n.startswith(("./", "/")) for n in names)
    for m in members(data):
        assert m.uname == "" and m.gname == ""
        assert isinstance(m.mtime, int)
    assert data.endswith(bytes(1024)) and len(data) % 512 == 0


@root_only
def test_metadata_types_and_xattrs(tmp_path: Path) -> None:
    t = tmp_path / "t"
    t.mkdir()
    (t / "suid").write_bytes(b"#!/bin/sh\n")
    os.chown(t / "suid", 1234, 5678)  # chown before chmod: chown clears set-id bits
    os.chmod(t / "suid", 0o4755)
    (t / "sticky").mkdir()
    os.chmod(t / "sticky", 0o1777)
    (t / "sgid").mkdir()
    os.chmod(t / "sgid", 0o2750)
    os.symlink("/etc/passwd", t / "link")
    (t / "h1").write_bytes(b"same")
    os.link(t / "h1", t / "h2")
    os.mkfifo(t / "fifo")
    os.mknod(t / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(t / "loop", stat.S_IFBLK | 0o660, os.makedev(7, 0))
    os.setxattr(t / "h1", "user.foo", b"bar")
    os.setxattr(t / "suid", "security.capability", CAP)
    os.setxattr(t / "sticky", "trusted.overlay.origin", b"x")
    os.setxattr(t / "sticky", "user.overlay.impure", b"y")
    os.setxattr(t / "sgid", "trusted.other", b"z")
    got = {m.name: m for m in members(tar_of(t))}
    assert got["suid"].mode == 0o4755 and (got["suid"].uid, got["suid"].gid) == (1234, 5678)
    assert got["sticky"].mode == 0o1777 and got["sgid"].mode == 0o2750
    assert got["link"].issym() and got["link"].linkname == "/etc/passwd"
    assert got["h1"].isreg() and got["h1"].size == 4
    assert got["h2"].islnk() and got["h2"].linkname == "h1"
    assert got["fifo"].isfifo()
    assert got["null"].ischr() and (got["null"].devmajor, got["null"].devminor) == (1, 3)
    assert got["loop"].isblk() and (got["loop"].devmajor, got["loop"].devminor) == (7, 0)
    assert got["h1"].pax_headers["SCHILY.xattr.user.foo"] == "bar"
    cap = got["suid"].pax_headers["SCHILY.xattr.security.capability"]
    assert cap.encode("utf-8", "surrogateescape") == CAP
    for m in got.values():
        assert not any("overlay" in k or "trusted" in k for k in m.pax_headers), m.name


def test_long_and_non_ascii_names(tmp_path: Path) -> None:
    long = "d" * 90 + "/" + "f" * 120
    (tmp_path / long).parent.mkdir()
    (tmp_path / long).write_bytes(b"x")
    (tmp_path / "héllo").write_bytes(b"y")
    os.symlink("t" * 150, tmp_path / "longlink")
    got = {m.name: m for m in members(tar_of(tmp_path))}
    assert long in got and "héllo" in got
    assert got["longlink"].linkname == "t" * 150
    listing = subprocess.run(
        ["tar", "tf", "-"], input=tar_of(tmp_path), capture_output=True, check=True
    ).stdout.decode()
    assert long in listing.splitlines()


def test_large_file_content_streams(tmp_path: Path) -> None:
    blob = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "big").write_bytes(blob)
    (tmp_path / "small").write_bytes(b"s" * 1000)
    with tarfile.open(fileobj=io.BytesIO(tar_of(tmp_path))) as tf:
        assert tf.extractfile("big").read() == blob  # type: ignore[union-attr]
        assert tf.extractfile("small").read() == b"s" * 1000  # type: ignore[union-attr]


def test_deterministic_and_epoch_clamp(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"1")
    (tmp_path / "old").write_bytes(b"2")
    os.utime(tmp_path / "old", (1000, 1000))
    os.utime(tmp_path / "d" / "f", (2_000_000_000, 2_000_000_000))
    assert tar_of(tmp_path) == tar_of(tmp_path)
    got = {m.name: m.mtime for m in members(tar_of(tmp_path, epoch=5000))}
    assert got == {"d": 5000, "d/f": 5000, "old": 1000}
    d1 = digest_upper(str(tmp_path), 5000)
    os.utime(tmp_path / "d" / "f", (1_900_000_000, 1_900_000_000))
    d2 = digest_upper(str(tmp_path), 5000)
    assert d1.diff_id == d2.diff_id and d1.size == d2.size
    assert d1.diff_id == "sha256:" + hashlib.sha256(tar_of(tmp_path, "upper", 5000)).hexdigest()


def test_empty_upper(tmp_path: Path) -> None:
    d = digest_upper(str(tmp_path), None)
    assert d.empty and d.size == 1024


@root_only
def test_redirect_and_metacopy_rejected(tmp_path: Path) -> None:
    (tmp_path / "moved").mkdir()
    os.setxattr(tmp_path / "moved", "trusted.overlay.redirect", b"/orig")
    with pytest.raises(LayerError, match="redirect_dir=off,metacopy=off"):
        tar_of(tmp_path, "upper")
    tar_of(tmp_path, "plain")  # plain trees just drop overlay xattrs


def test_fuse_overlayfs_forms(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / ".wh..wh..opq").write_bytes(b"")
    (tmp_path / "d" / "a").write_bytes(b"a")
    (tmp_path / ".wh.gone").write_bytes(b"")
    os.chmod(tmp_path / ".wh.gone", 0o644)
    ms = members(tar_of(tmp_path, "upper", 77))
    assert [m.name for m in ms] == [".wh.gone", "d", "d/.wh..wh..opq", "d/a"]
    wh = ms[0]
    assert wh.isreg() and wh.size == 0 and wh.mode == 0 and wh.mtime == 77


# -- a genuine overlay upper dir ------------------------------------------------------------
def _mount_overlay(base: Path) -> tuple[Path, Path, Path]:
    lower, upper, work, merged = (base / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    (lower / "keep").mkdir()
    (lower / "keep" / "gone").write_text("bye")
    (lower / "keep" / "stays").write_text("hi")
    (lower / "opq").mkdir()
    for n in ("x", "y"):
        (lower / "opq" / n).write_text(n)
    (lower / "file2dir").write_text("f")
    (lower / "dir2link").mkdir()
    (lower / "dir2link" / "inner").write_text("i")
    os.symlink("keep", lower / "link2file")
    opts = f"lowerdir={lower},upperdir={upper},workdir={work},redirect_dir=off,metacopy=off"
    result = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"overlay mount unavailable: {result.stderr.decode().strip()}")
    return lower, upper, merged


@root_only
def test_real_overlay_upper(tmp_path: Path) -> None:
    _, upper, merged = _mount_overlay(tmp_path)
    try:
        os.unlink(merged / "keep" / "gone")
        subprocess.run(["rm", "-rf", str(merged / "opq")], check=True)
        (merged / "opq").mkdir()
        (merged / "opq" / "new").write_text("new")
        os.unlink(merged / "file2dir")
        (merged / "file2dir").mkdir()
        (merged / "file2dir" / "c").write_text("c")
        subprocess.run(["rm", "-rf", str(merged / "dir2link")], check=True)
        os.symlink("/nowhere", merged / "dir2link")
        os.unlink(merged / "link2file")
        (merged / "link2file").write_text("now a file")
        (merged / "added").write_bytes(b"+")
        os.setxattr(merged / "added", "user.foo", b"bar")
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    assert stat.S_ISCHR(os.lstat(upper / "keep" / "gone").st_mode)
    data = tar_of(upper, "upper", 1_700_000_000)
    got = {m.name: m for m in members(data)}
    names = raw_names(data)
    assert names.index("keep/") < names.index("keep/.wh.gone")
    assert got["keep/.wh.gone"].isreg() and got["keep/.wh.gone"].size == 0
    assert "keep/stays" not in got
    i = names.index("opq/")
    assert names[i + 1] == "opq/.wh..wh..opq" and names[i + 2] == "opq/new"
    assert got["file2dir"].isdir() and got["file2dir/c"].isreg()
    assert got["dir2link"].issym() and got["dir2link"].linkname == "/nowhere"
    assert got["link2file"].isreg()
    assert got["added"].pax_headers.get("SCHILY.xattr.user.foo") == "bar"
    for m in got.values():
        assert not any("overlay" in k for k in m.pax_headers), m.name
        assert not m.ischr()
    # Round trip: unpack to overlay-lower form and tar it again -> the same diffID.
    lower2 = tmp_path / "lower2"
    lower2.mkdir()
    diff_id = apply_layer(io.BytesIO(data), str(lower2))
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    st = os.lstat(lower2 / "keep" / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(lower2 / "opq", "trusted.overlay.opaque") == b"y"
    assert digest_upper(str(lower2), 1_700_000_000).diff_id == diff_id
    assert tar_of(lower2, "upper", 1_700_000_000) == data
