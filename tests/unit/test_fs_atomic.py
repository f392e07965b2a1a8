"""fs/atomic.py: a file is replaced whole or not at all, with the mode asked for."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from ocibuild.fs.atomic import atomic_file, staged_file, write_atomic


def _names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


@pytest.mark.parametrize("durable", [True, False])
def test_write_replaces_content_with_mode_and_leaves_no_temp(tmp_path: Path, durable: bool) -> None:
    target = tmp_path / "f.json"
    target.write_bytes(b"old")
    old_umask = os.umask(0o077)  # the mode is chmodded, so the umask does not narrow it
    try:
        write_atomic(str(target), "new \u00e9", mode=0o640, durable=durable)
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == "new \u00e9".encode()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert _names(tmp_path) == ["f.json"]


def test_writer_raising_mid_stream_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "blob"
    target.write_bytes(b"old content")
    target.chmod(0o600)
    with pytest.raises(RuntimeError, match="source broke"), atomic_file(str(target)) as f:
        f.write(b"new and half")
        f.flush()
        raise RuntimeError("source broke")
    assert target.read_bytes() == b"old content"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert _names(tmp_path) == ["blob"]


def test_new_file_not_created_when_writer_raises(tmp_path: Path) -> None:
    target = tmp_path / "new"
    with pytest.raises(OSError), atomic_file(str(target)) as f:
        f.write(b"x")
        raise OSError("disk full")
    assert _names(tmp_path) == []


def test_killed_writer_leaves_old_content(tmp_path: Path) -> None:
    """A crash (SIGKILL mid-write: no cleanup runs at all) never shows a torn file: the
    target keeps its old content; only an unnamed temp file is left behind."""
    target = tmp_path / "images.json"
    target.write_bytes(b'{"tags":{}}\n')
    pid = os.fork()
    if pid == 0:  # the child: write half, then die as a power cut would stop it
        try:
            with atomic_file(str(target)) as f:
                f.write(b'{"tags":{"a:lat')
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(3)  # never reached: SIGKILL
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert target.read_bytes() == b'{"tags":{}}\n'
    left = [n for n in _names(tmp_path) if n != "images.json"]
    assert len(left) == 1 and left[0].startswith(".tmp-")


def test_staged_commit_without_replace_keeps_existing(tmp_path: Path) -> None:
    """Content-addressed files: an existing copy is kept and the temp file dropped."""
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (blobs / "abc").write_bytes(b"first")
    with staged_file(str(blobs), mode=0o600) as staged:
        staged.file.write(b"second")
        assert staged.commit(str(blobs / "abc"), replace=False) is False
    assert (blobs / "abc").read_bytes() == b"first"
    with staged_file(str(blobs), mode=0o600) as staged:
        staged.file.write(b"third")
        assert staged.commit(str(blobs / "def"), replace=False) is True
    assert (blobs / "def").read_bytes() == b"third"
    assert _names(blobs) == ["abc", "def"]


def test_staged_file_never_committed_is_removed(tmp_path: Path) -> None:
    with staged_file(str(tmp_path)) as staged:
        staged.file.write(b"digest did not match")
        assert os.path.exists(staged.tmp)
    assert _names(tmp_path) == []


def test_temp_file_in_tmp_dir_is_renamed_across(tmp_path: Path) -> None:
    """``tmp_dir`` (the store's tmp/): the temp file lives there, the target elsewhere."""
    scratch, dest = tmp_path / "tmp", tmp_path / "blobs"
    scratch.mkdir()
    dest.mkdir()
    write_atomic(str(dest / "x"), b"data", tmp_dir=str(scratch), prefix="store-blob-")
    assert (dest / "x").read_bytes() == b"data"
    assert _names(scratch) == []
