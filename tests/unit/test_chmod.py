"""builder/chmod.py: COPY/ADD --chmod values (no privileges)."""

from __future__ import annotations

import stat

import pytest

from ocibuild.builder.chmod import created_dir_mode, parse_chmod


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (None, 0o755),  # no --chmod: BuildKit's MkdirAll default
        ("0700", 0o700),  # current BuildKit: the copy's octal mode (fsutil 13604323)
        ("750", 0o750),
        ("0", 0o000),
        ("1777", 0o777),  # only the permission bits reach mkdir
        ("4755", 0o755),
        ("u+x,go-w", 0o755),  # a symbolic mode never reaches MkdirAll
        ("a=rX", 0o755),
    ],
)
def test_created_dir_mode(value: str | None, mode: int) -> None:
    assert created_dir_mode(value) == mode


@pytest.mark.parametrize(
    ("value", "before", "after"),
    [
        ("640", stat.S_IFREG | 0o777, 0o640),
        ("u+x,go-w", stat.S_IFREG | 0o666, 0o744),
        ("a=rX", stat.S_IFDIR | 0o700, 0o555),
        ("a=rX", stat.S_IFREG | 0o640, 0o444),
        ("g=u", stat.S_IFREG | 0o640, 0o660),
    ],
)
def test_parse_chmod(value: str, before: int, after: int) -> None:
    fn = parse_chmod(value)
    assert fn is not None and fn(before) == after


@pytest.mark.parametrize("value", ["64a", "u+q", "9", ""])
def test_parse_chmod_rejects(value: str) -> None:
    assert parse_chmod(value) is None
