"""The reaper removes what it is handed, on its own thread, and drain() waits for it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ocibuild.fs.reaper import Reaper


def test_trees_are_removed_in_the_background_and_drain_waits(tmp_path: Path) -> None:
    trees = []
    for i in range(5):
        tree = tmp_path / f"t{i}" / "a" / "b"
        tree.mkdir(parents=True)
        (tree / "f").write_text("x")
        trees.append(tmp_path / f"t{i}")
    reaper = Reaper()
    seen: list[str] = []
    real = os.rmdir

    def rmdir(path: str, *args: object, **kwargs: object) -> None:
        seen.append(threading.current_thread().name)
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    os.rmdir = rmdir  # type: ignore[assignment]
    try:
        for tree in trees:
            reaper.remove(str(tree))
        reaper.drain()
    finally:
        os.rmdir = real
    assert sorted(os.listdir(tmp_path)) == []
    assert seen and set(seen) == {"reaper"}  # not the caller's thread
    reaper.drain()  # nothing handed over: returns at once
