"""The source listing of ocibuild.observe.explain, in its side file: written and read
back, and a miss names the first changed path in string order, whether the two listings
are compared side by side (the walk's order) or read whole (any other order)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocibuild.observe.explain import Fields, Listing, _sources_reason, write_listing

FILE = ("file", "0644", "3", "sha256:" + "a" * 64)
DIR = ("dir", "0755", "0", "")


def listing(tmp_path: Path, records: list[tuple[str, Fields]], index: int = 0) -> Listing:
    return write_listing(str(tmp_path), index, iter(records))


WALK = [  # the walk's order: names sorted per directory, parents first
    ("app", DIR),
    ("app/-x", FILE),
    ("app/sub", DIR),
    ("app/sub/deep", FILE),
    ("app/sub.txt", FILE),
    ("app/z", ("symlink", "0777", "0", "link:sub")),
]


def test_a_listing_reads_back_and_is_checked(tmp_path: Path) -> None:
    odd = ("app/odd \udcff\nname", FILE)
    written = listing(tmp_path, [*WALK, odd])
    assert written.entries == 7
    assert list(written.read()) == [*WALK, odd]
    assert written.load() == dict([*WALK, odd])
    kept = written.keep(str(tmp_path / "0.files"))
    assert kept == {"file": "0.files", "sha256": written.sha256, "entries": 7}
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
    (tmp_path / "0.files").write_bytes((tmp_path / "0.files").read_bytes()[:-1])
    assert written.load() is None  # cut short: not the listing the record names
    assert _sources_reason(written, listing(tmp_path, WALK)) == "source changed"


@pytest.mark.parametrize("order", ["walk", "reversed"])
def test_the_first_change_in_string_order_is_named(tmp_path: Path, order: str) -> None:
    new = dict(WALK)
    new["app/sub/deep"] = ("file", "0644", "4", "sha256:" + "b" * 64)
    new["app/sub.txt"] = ("file", "0600", "3", FILE[3])  # "app/sub.txt" < "app/sub/deep"
    after = list(new.items())
    before = WALK
    if order == "reversed":  # not the walk's order: both are read whole
        before, after = before[::-1], after[::-1]
    reason = _sources_reason(listing(tmp_path, before, 1), listing(tmp_path, after, 2))
    assert reason == "source app/sub.txt changed (mode 0644 -> 0600)"


def test_added_removed_and_unchanged(tmp_path: Path) -> None:
    before = listing(tmp_path, WALK, 1)
    added = listing(tmp_path, [*WALK[:3], ("app/sub/a", FILE), *WALK[3:]], 2)
    assert _sources_reason(before, added) == "source app/sub/a added"
    assert _sources_reason(added, before) == "source app/sub/a removed"
    assert _sources_reason(before, listing(tmp_path, WALK, 3)) == "sources changed"
    content = listing(tmp_path, [*WALK[:5], ("app/z", ("symlink", "0777", "0", "link:x"))], 4)
    assert _sources_reason(before, content) == "source app/z changed (symlink target sub -> x)"
    assert _sources_reason(None, before) == "source changed"


def test_a_path_listed_twice_counts_once(tmp_path: Path) -> None:
    # COPY app app/sub /x: overlapping sources list app/sub's entries twice
    twice = listing(tmp_path, [*WALK, ("app/sub", DIR), ("app/sub/deep", FILE)], 1)
    assert _sources_reason(listing(tmp_path, WALK, 2), twice) == "sources changed"
    assert len(twice.load() or {}) == len(WALK)


def test_a_recorded_listing_is_copied_to_another_record(tmp_path: Path) -> None:
    # a hit on a record filed under another index: the rewritten record gets a copy
    written = listing(tmp_path, WALK)
    first = written.keep(str(tmp_path / "3.files"))
    assert written.keep(str(tmp_path / "3.files")) == first  # that file already
    recorded = Listing(str(tmp_path / "3.files"), written.sha256, 6, temporary=False)
    assert recorded.keep(str(tmp_path / "5.files")) == {**(first or {}), "file": "5.files"}
    assert (tmp_path / "5.files").read_bytes() == (tmp_path / "3.files").read_bytes()
    recorded.discard()  # not temporary: left alone
    assert (tmp_path / "3.files").exists()
    gone = Listing(str(tmp_path / "missing.files"), written.sha256, 6, temporary=False)
    assert gone.keep(str(tmp_path / "6.files")) is None
