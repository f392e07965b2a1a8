"""The native helper against the real kernel: mount namespace, overlay, binds, openat2.

Every privileged test runs in a forked child that enters its own mount namespace, so the
test runner's namespace (and the host's mount table) is never touched.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from ocibuild import _native
from ocibuild.errors import OcibuildError
from ocibuild.fs.rootpath import open_in_root, secure_join
from tests.conftest import in_child, mountinfo_mentions

pytestmark = pytest.mark.integration


def _can_mount() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "no overlayfs in this kernel"
    return None


needs_mount = pytest.mark.skipif(_can_mount() is not None, reason=str(_can_mount()))


def test_module_is_built() -> None:
    import ocibuild._ocibuild_native as mod

    assert hasattr(mod.lib, "ocb_mount_overlay")


def test_missing_module_gives_build_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import ocibuild

    monkeypatch.setitem(sys.modules, "ocibuild._ocibuild_native", None)
    monkeypatch.delattr(ocibuild, "_ocibuild_native", raising=False)
    with pytest.raises(OcibuildError) as info:
        _native.umount("/nonexistent")
    assert info.value.message.startswith("native helper not built")
    assert "pip install -e ." in (info.value.hint or "")


def _mkdirs(base: Path, *names: str) -> list[str]:
    out = []
    for n in names:
        (base / n).mkdir(parents=True)
        out.append(str(base / n))
    return out


@needs_mount
def test_mount_namespace_keeps_mounts_private(tmp_path: Path) -> None:
    src, dst = _mkdirs(tmp_path, "src", "dst")
    Path(src, "marker").write_text("x")

    def child() -> tuple[bool, int]:
        _native.enter_mount_namespace()
        _native.enter_mount_namespace()  # idempotent
        _native.bind_mount(src, dst)
        seen = os.path.exists(os.path.join(dst, "marker"))
        return seen, len(mountinfo_mentions(dst))

    seen, child_count = in_child(child)
    assert seen and child_count == 1
    assert mountinfo_mentions(str(tmp_path)) == []
    assert not os.path.exists(os.path.join(dst, "marker"))


def _overlay_child(tmp: str, lowers: list[str], classic: bool) -> dict[str, Any]:
    _native.enter_mount_namespace()
    upper, work, merged = (os.path.join(tmp, n) for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.mkdir(d)
    _native.mount_overlay(lowers, upper, work, merged, classic_api=classic)
    try:
        top = Path(merged, "shared").read_text()
        names = sorted(os.listdir(merged))
        os.unlink(os.path.join(merged, "only0"))
        Path(merged, "new").write_text("new")
        opts = mountinfo_mentions(merged)[0]
    finally:
        _native.umount(merged)
    st = os.lstat(os.path.join(upper, "only0"))
    return {
        "top": top,
        "names": names,
        "whiteout": (stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)),
        "new": Path(upper, "new").read_text(),
        "opts": opts,
        "after": len(mountinfo_mentions(merged)),
    }


def _make_lowers(base: Path, names: list[str]) -> list[str]:
    lowers = []
    for i, name in enumerate(names):
        d = base / name
        d.mkdir(parents=True)
        (d / "shared").write_text(f"layer{i}")
        (d / f"only{i}").write_text(str(i))
        lowers.append(str(d))
    return lowers


@needs_mount
@pytest.mark.parametrize("classic", [False, True], ids=["new-api", "classic-mount"])
def test_overlay_order_whiteout_and_escaping(tmp_path: Path, classic: bool) -> None:
    # Names with the characters the classic option string must escape.
    lowers = _make_lowers(tmp_path / "l", ["top:a", "mid,b", "bot\\c"])
    res = in_child(_overlay_child, str(tmp_path), lowers, classic)
    assert res["top"] == "layer0"  # first lower is the top-most
    assert res["names"] == ["only0", "only1", "only2", "shared"]
    assert res["whiteout"] == (True, 0, 0)
    assert res["new"] == "new"
    assert "lowerdir" in res["opts"] and "overlay" in res["opts"]
    assert res["after"] == 0
    assert mountinfo_mentions(str(tmp_path)) == []


@needs_mount
def test_overlay_many_long_lowers_exceed_one_page(tmp_path: Path) -> None:
    # 60 lowers x ~110-byte paths: about 6.6 KiB, more than mount(2)'s one page.
    names = [f"{'d' * 100}{i:03d}" for i in range(60)]
    lowers = _make_lowers(tmp_path / "l", names)
    assert len(":".join(lowers)) > os.sysconf("SC_PAGESIZE")
    res = in_child(_overlay_child, str(tmp_path), lowers, False)
    assert res["top"] == "layer0"
    assert len(res["names"]) == 61


@needs_mount
def test_overlay_classic_reports_too_many_layers(tmp_path: Path) -> None:
    lowers = _make_lowers(tmp_path / "l", [f"{'d' * 100}{i:03d}" for i in range(60)])

    def child() -> tuple[int, str]:
        try:
            _overlay_child(str(tmp_path), lowers, True)
        except OSError as exc:
            return exc.errno or 0, str(exc)
        return 0, ""

    err, text = in_child(child)
    assert err == errno.E2BIG
    assert "mount overlay:" in text and "too many lower layers" in text


@needs_mount
def test_overlay_error_names_the_target(tmp_path: Path) -> None:
    lower = _mkdirs(tmp_path, "lower")[0]

    def child() -> tuple[int, Any, str]:
        _native.enter_mount_namespace()
        try:
            _native.mount_overlay([lower], "/nonexistent/u", "/nonexistent/w", "/nonexistent/m")
        except OSError as exc:
            return exc.errno or 0, exc.filename, exc.strerror or ""
        return 0, None, ""

    err, filename, text = in_child(child)
    assert err == errno.ENOENT
    assert filename == "/nonexistent/m"
    assert text.startswith("mount overlay: No such file or directory")


@needs_mount
def test_bind_mount_readonly_and_lazy_umount(tmp_path: Path) -> None:
    src, dst = _mkdirs(tmp_path, "src", "dst")

    def child() -> tuple[int, int]:
        _native.enter_mount_namespace()
        _native.bind_mount(src, dst, readonly=True)
        try:
            Path(dst, "f").write_text("x")
            err = 0
        except OSError as exc:
            err = exc.errno or 0
        fd = os.open(dst, os.O_RDONLY)  # keeps it busy
        try:
            _native.umount(dst, detach=True)
        finally:
            os.close(fd)
        return err, len(mountinfo_mentions(dst))

    err, left = in_child(child)
    assert err == errno.EROFS
    assert left == 0


def _escape_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "inside").write_text("inside")
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    (root / "etc" / "abs").symlink_to(str(secret))  # absolute: must resolve in root
    (root / "etc" / "rel").symlink_to("../../secret")
    return root


def test_open_in_root_clamps_dotdot_and_absolute_symlinks(tmp_path: Path) -> None:
    root = _escape_root(tmp_path)
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        for path in ("../secret", "../../etc/../secret", "etc/abs", "etc/rel"):
            with pytest.raises(FileNotFoundError):
                _native.open_in_root(rootfd, path, os.O_RDONLY)
        # The same escapes land on the copy inside the root.
        inner = root / tmp_path.relative_to("/") / "secret"
        inner.parent.mkdir(parents=True)
        inner.write_text("root copy")
        fd = _native.open_in_root(rootfd, "etc/abs", os.O_RDONLY)
        with os.fdopen(fd) as f:
            assert f.read() == "root copy"
        fd = _native.open_in_root(rootfd, "../etc/inside", os.O_RDONLY)
        with os.fdopen(fd) as f:
            assert f.read() == "inside"
    finally:
        os.close(rootfd)


def test_open_in_root_refuses_magic_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "self").symlink_to("/proc/self/root")
    dirfd = os.open("/", os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as info:
            _native.open_in_root(dirfd, "proc/self/root/etc/hostname", os.O_RDONLY)
        assert info.value.errno == errno.ELOOP
    finally:
        os.close(dirfd)


def test_python_fallback_resolution_matches(tmp_path: Path) -> None:
    root = _escape_root(tmp_path)
    inner = os.path.join(root, tmp_path.relative_to("/"), "secret")
    assert secure_join(str(root), "etc/abs") == inner
    for path in ("../secret", "etc/rel", "/etc/../../secret"):
        assert secure_join(str(root), path) == str(root / "secret")
    assert secure_join(str(root), "/etc/inside") == str(root / "etc" / "inside")
    fd = open_in_root(str(root), "/../etc/inside", os.O_RDONLY)
    with os.fdopen(fd) as f:
        assert f.read() == "inside"
