"""digest_upper hashes on a thread of its own (layers/diff.py): the diffID is the sha256
of exactly the tar the writer makes, big files read by that thread included; a file that
shrinks, or an error in the walk, ends as a LayerError with no descriptor left open."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from ocibuild.errors import LayerError
from ocibuild.layers import diff
from ocibuild.layers.diff import TreeDigest, digest_upper
from ocibuild.layers.tarwriter import SINK_FILE, write_tree

pytestmark = pytest.mark.unit


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def tree(root: Path) -> Path:
    """Small files around two big ones (read by the hashing thread), in walk order."""
    (root / "a").write_bytes(b"a" * 100)
    (root / "big1").write_bytes(os.urandom(SINK_FILE + 4097))
    (root / "d").mkdir()
    for i in range(300):
        (root / "d" / f"f{i}").write_bytes(b"%d\n" % i)
    (root / "d" / "big2").write_bytes(os.urandom(SINK_FILE))
    (root / "mid").write_bytes(os.urandom(300 << 10))  # a memoryview part, copied
    return root


def test_diff_id_is_the_sha256_of_the_tar(tmp_path: Path) -> None:
    root = tree(tmp_path)
    out = io.BytesIO()  # no write_file: the writer reads every file itself
    stats = write_tree(str(root), out, mode="upper", source_date_epoch=None)
    before = open_fds()
    digest = digest_upper(str(root), None)
    assert digest.diff_id == "sha256:" + hashlib.sha256(out.getvalue()).hexdigest()
    assert digest.size == len(out.getvalue()) == stats.tar_bytes
    assert open_fds() == before


def test_with_a_small_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer waits for the thread when the queue is full, and the order holds."""
    monkeypatch.setattr(diff, "QUEUE", 1)
    root = tree(tmp_path)
    out = io.BytesIO()
    write_tree(str(root), out, mode="upper", source_date_epoch=None)
    assert digest_upper(str(root), None).diff_id == (
        "sha256:" + hashlib.sha256(out.getvalue()).hexdigest()
    )


def test_a_file_shorter_than_announced_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 1000)
    before = open_fds()
    sink = TreeDigest()
    sink.write(b"head")
    sink.write_file(os.open(path, os.O_RDONLY), 5000, b"f")
    with pytest.raises(LayerError, match="f: file shrank while being archived"):
        sink.write(b"tail")  # (raised here when the thread was done already)
        sink.close()
    sink.close(quiet=True)
    assert open_fds() == before


def test_an_error_in_the_walk_wins_and_closes_everything(tmp_path: Path) -> None:
    root = tree(tmp_path)
    (root / "z").mkdir()  # walked after the big files were handed over
    os.setxattr(root / "z", "trusted.overlay.redirect", b"/orig")
    before = open_fds()
    with pytest.raises(LayerError, match="redirect_dir=off,metacopy=off"):
        digest_upper(str(root), None)
    assert open_fds() == before
