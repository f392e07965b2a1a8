"""apply_layer / extract_archive / resolve_in_root, including hostile archives."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from ocibuild.errors import LayerError
from ocibuild.layers.apply import apply_layer, extract_archive, unpack_layer
from ocibuild.layers.safepath import resolve_in_root, split_member_name
from ocibuild.layers.tarwriter import write_tree

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown, xattrs)")


def make_tar(*entries: tuple[str, str, bytes | str]) -> bytes:
    """entries: (name, kind, data-or-linkname); kind in file/dir/sym/lnk."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1000
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif kind == "file":
                raw = data if isinstance(data, bytes) else data.encode()
                info.size, info.mode = len(raw), 0o644
                tf.addfile(info, io.BytesIO(raw))
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = data if isinstance(data, str) else data.decode()
                tf.addfile(info)
    return out.getvalue()


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """(dest, outside): dest is empty; outside is a sibling dir that must stay empty."""
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    return dest, outside


def assert_empty(path: Path) -> None:
    assert list(path.iterdir()) == []


# -- hostile layers --------------------------------------------------------------------------
def test_dotdot_rejected(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    with pytest.raises(LayerError, match=r"'\.\.'"):
        apply_layer(io.BytesIO(make_tar(("../outside/x", "file", "pwn"))), str(dest))
    assert_empty(outside)


def test_absolute_path_made_relative(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    apply_layer(io.BytesIO(make_tar((f"{outside}/x", "file", "ok"))), str(dest))
    assert_empty(outside)
    assert (dest / str(outside).lstrip("/") / "x").read_text() == "ok"


@pytest.mark.parametrize("target", ["../outside", "/nonexistent-abs", "."])
def test_symlink_then_write_through(sandbox: tuple[Path, Path], target: str) -> None:
    dest, outside = sandbox
    tar = make_tar(
        ("link", "sym", str(outside) if target == "/nonexistent-abs" else target),
        ("link/pwn", "file", "pwn"),
    )
    with pytest.raises(LayerError, match="not a directory"):
        apply_layer(io.BytesIO(tar), str(dest))
    assert_empty(outside)


@pytest.mark.parametrize("link", ["/etc/passwd", "../outside/f", "missing"])
def test_hardlink_outside_rejected(sandbox: tuple[Path, Path], link: str) -> None:
    dest, outside = sandbox
    with pytest.raises(LayerError):
        apply_layer(io.BytesIO(make_tar(("hl", "lnk", link))), str(dest))
    assert not (dest / "hl").exists()
    assert_empty(outside)


def test_hardlink_inside_layer(sandbox: tuple[Path, Path]) -> None:
    dest, _ = sandbox
    apply_layer(io.BytesIO(make_tar(("d/a", "file", "x"), ("b", "lnk", "d/a"))), str(dest))
    assert os.lstat(dest / "b").st_ino == os.lstat(dest / "d" / "a").st_ino


def test_destination_must_be_empty(sandbox: tuple[Path, Path]) -> None:
    dest, _ = sandbox
    (dest / "x").write_text("x")
    with pytest.raises(LayerError, match="not empty"):
        apply_layer(io.BytesIO(make_tar(("a", "file", "a"))), str(dest))


def test_garbage_stream(sandbox: tuple[Path, Path]) -> None:
    dest, _ = sandbox
    with pytest.raises(LayerError):
        apply_layer(io.BytesIO(b"\x1f\x8bnot really gzip" * 10), str(dest))


# -- diffID and compression -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["none", "gzip", "bzip2", "xz", "zstd"])
def test_diff_id_of_any_compression(tmp_path: Path, kind: str) -> None:
    # tarfile pads to a 10 KiB record: the diffID must cover those trailing bytes too.
    raw = make_tar(("d", "dir", b""), ("d/f", "file", "hello"))
    assert len(raw) % 10240 == 0
    packers: dict[str, Callable[[bytes], bytes]] = {
        "none": bytes,
        "gzip": gzip.compress,
        "bzip2": bz2.compress,
        "xz": lzma.compress,
        "zstd": zstandard.ZstdCompressor().compress,
    }
    packed = packers[kind](raw)
    got = unpack_layer(io.BytesIO(packed), str(tmp_path))
    assert got.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert got.size == len(raw)
    assert (tmp_path / "d" / "f").read_text() == "hello"


@root_only
def test_whiteouts_become_overlay_form(tmp_path: Path) -> None:
    tar = make_tar(
        ("a", "dir", b""),
        ("a/.wh..wh..opq", "file", b""),
        ("a/new", "file", "n"),
        (".wh.gone", "file", b""),
    )
    apply_layer(io.BytesIO(tar), str(tmp_path))
    st = os.lstat(tmp_path / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(tmp_path / "a", "trusted.overlay.opaque") == b"y"
    assert not (tmp_path / "a" / ".wh..wh..opq").exists()
    assert not (tmp_path / ".wh.gone").exists()


@root_only
def test_metadata_applied(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ro").mkdir()
    (src / "ro" / "f").write_bytes(b"data")
    os.chown(src / "ro" / "f", 42, 43)
    os.chmod(src / "ro" / "f", 0o4711)
    os.setxattr(src / "ro" / "f", "user.k", b"v")
    os.chmod(src / "ro", 0o555)
    os.utime(src / "ro", (12345, 12345))
    os.symlink("ro/f", src / "s")
    os.mknod(src / "tty", stat.S_IFCHR | 0o620, os.makedev(5, 0))
    buf = io.BytesIO()
    write_tree(str(src), buf, mode="plain", source_date_epoch=None)
    dest = tmp_path / "dest"
    dest.mkdir()
    apply_layer(io.BytesIO(buf.getvalue()), str(dest))
    st = os.lstat(dest / "ro" / "f")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (42, 43, 0o4711)
    assert os.getxattr(dest / "ro" / "f", "user.k") == b"v"
    assert stat.S_IMODE(os.lstat(dest / "ro").st_mode) == 0o555
    assert os.lstat(dest / "ro").st_mtime == 12345
    assert os.readlink(dest / "s") == "ro/f"
    assert os.lstat(dest / "tty").st_rdev == os.makedev(5, 0)
    again = io.BytesIO()
    write_tree(str(dest), again, mode="plain", source_date_epoch=None)
    assert again.getvalue() == buf.getvalue()


# -- extract_archive (ADD) --------------------------------------------------------------------
def test_extract_merges_and_overwrites(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "app" / "old").mkdir(parents=True)
    (root / "app" / "old" / "keep").write_text("keep")
    (root / "app" / "file").write_text("before")
    tar = make_tar(
        ("old", "dir", b""),
        ("old/new", "file", "new"),
        ("file", "file", "after"),
        (".wh.x", "file", "plain file"),
    )
    extract_archive(io.BytesIO(gzip.compress(tar)), str(root), "/app")
    assert (root / "app" / "old" / "keep").read_text() == "keep"
    assert (root / "app" / "old" / "new").read_text() == "new"
    assert (root / "app" / "file").read_text() == "after"
    assert (root / "app" / ".wh.x").read_text() == "plain file"


def test_extract_symlinks_stay_in_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "rootfs", tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    os.symlink("/real", root / "abs")  # absolute: means ROOT/real, like in a chroot
    os.symlink("../../../../outside", root / "up")  # clamps at ROOT
    tar = make_tar(
        ("abs/a", "file", "a"),
        ("up/b", "file", "b"),
        ("evil", "sym", str(outside)),
        ("evil/c", "file", "c"),
        ("hl", "lnk", "/etc/passwd"),
    )
    with pytest.raises(LayerError, match="hardlink"):
        extract_archive(io.BytesIO(tar), str(root), "/")
    assert_empty(outside)
    assert (root / "real" / "a").read_text() == "a"
    assert (root / "outside" / "b").read_text() == "b"
    assert (root / str(outside).lstrip("/") / "c").read_text() == "c"


def test_extract_dotdot_rejected(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    with pytest.raises(LayerError):
        extract_archive(io.BytesIO(make_tar(("../x", "file", "x"))), str(tmp_path / "root"), "/")
    assert not (tmp_path / "x").exists()


# -- resolve_in_root --------------------------------------------------------------------------
def test_resolve_in_root(tmp_path: Path) -> None:
    root = tmp_path
    (root / "usr" / "lib").mkdir(parents=True)
    os.symlink("usr/lib", root / "lib")
    os.symlink("/usr/lib/../..", root / "top")
    os.symlink("loop", root / "loop")
    r = str(root)
    assert resolve_in_root(r, "/lib/x") == f"{r}/usr/lib/x"
    assert resolve_in_root(r, "../../etc/passwd") == f"{r}/etc/passwd"
    assert resolve_in_root(r, "top/top/etc") == f"{r}/etc"
    assert resolve_in_root(r, "/") == r
    assert resolve_in_root(r, "missing/../lib") == f"{r}/usr/lib"
    with pytest.raises(LayerError, match="symbolic links"):
        resolve_in_root(r, "loop/x")


def test_split_member_name() -> None:
    assert split_member_name("/a//b/./c/") == ["a", "b", "c"]
    assert split_member_name("./") == []
    with pytest.raises(LayerError):
        split_member_name("a/../../b")
