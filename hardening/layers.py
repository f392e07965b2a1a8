"""Hostile archives: each case is applied as an image layer and as an ADD archive.

A case never escapes: after it, nothing outside the destination differs from before
(a sentinel tree beside it is compared entry by entry), and it either fails with the
expected error or yields the expected safe result. Run ``python -m hardening.layers``
for the summary line, or the pytest module tests/hardening/test_layer_corpus.py.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from ocibuild.errors import LayerError
from ocibuild.layers.apply import apply_layer, extract_archive


@dataclass
class Entry:
    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    link: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    pax: dict[str, str] = field(default_factory=dict)
    size: int | None = None  # a lying size: header says this, data is ``data``


def make_tar(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = e.type
            info.mode = e.mode
            info.uid, info.gid = e.uid, e.gid
            info.linkname = e.link
            info.pax_headers = dict(e.pax)
            if e.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                info.devmajor, info.devminor = 1, 3
            if e.type == tarfile.REGTYPE:
                info.size = len(e.data)
                tf.addfile(info, io.BytesIO(e.data))
            else:
                tf.addfile(info)
    raw = buf.getvalue()
    for e in entries:
        if e.size is not None:  # rewrite the size field of that header (and its checksum)
            raw = _lie_about_size(raw, e.name, e.size)
    return raw


def simple_tar(entries: list[tuple[str, bytes, str]], *, gz: bool = False) -> bytes:
    """A tar of (name, content, link target) entries: a symlink where a target is given,
    else a regular file; gzip-compressed when ``gz``."""
    raw = make_tar(
        [Entry(n, tarfile.SYMTYPE, link=t) if t else Entry(n, data=d) for n, d, t in entries]
    )
    return gzip.compress(raw, mtime=0) if gz else raw


def _lie_about_size(raw: bytes, name: str, size: int) -> bytes:
    out = bytearray(raw)
    for off in range(0, len(out), 512):
        block = out[off : off + 512]
        if block[:100].rstrip(b"\0") == name.encode():
            block[124:136] = f"{size:011o}\0".encode()
            block[148:156] = b" " * 8
            block[148:156] = f"{sum(block):06o}\0 ".encode()
            out[off : off + 512] = block
            return bytes(out)
    raise ValueError(name)


ANY = "<error or success, as long as nothing escapes>"


@dataclass
class Case:
    name: str
    entries: list[Entry] | None = None
    layer_error: str | None = None  # expected LayerError text; None = must succeed
    archive_error: str | None = None
    check: Callable[[str], None] | None = None  # on success, inspect the destination
    archive_check: Callable[[str], None] | None = None  # the same, for ADD
    raw: Callable[[], bytes] | None = None

    def data(self) -> bytes:
        if self.raw is not None:
            return self.raw()
        assert self.entries is not None
        return make_tar(self.entries)


def _only(*names: str) -> Callable[[str], None]:
    def check(dest: str) -> None:
        found = sorted(
            os.path.relpath(os.path.join(d, n), dest)
            for d, dirs, files in os.walk(dest)
            for n in dirs + files
        )
        assert found == sorted(names), found

    return check


def _is_symlink(name: str, target: str) -> Callable[[str], None]:
    def check(dest: str) -> None:
        assert os.readlink(os.path.join(dest, name)) == target

    return check


def _link_and_content(dest: str, link: str, target: str, name: str, data: bytes) -> None:
    _is_symlink(link, target)(dest)
    _expect_content(dest, name, data)


def _tar_bomb() -> bytes:
    return make_tar([Entry(f"f{i}") for i in range(2000)])


def _sparse_huge() -> bytes:
    # A GNU sparse entry claiming a terabyte of (mostly hole) data.
    info = tarfile.TarInfo("sparse")
    info.type = tarfile.GNUTYPE_SPARSE
    info.size = 0
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        tf.addfile(info)
    raw = bytearray(buf.getvalue())
    # realsize (offset 483, 12 bytes, base-256 for big values) = 1 TiB
    raw[483:495] = b"\x80" + (1 << 40).to_bytes(11, "big")
    raw[148:156] = b" " * 8
    raw[148:156] = f"{sum(raw[:512]):06o}\0 ".encode()
    return bytes(raw)


CASES: list[Case] = [
    Case("dotdot", [Entry("../escape", data=b"x")], "contains '..'", "contains '..'"),
    Case("dotdot-deep", [Entry("a/../../escape", data=b"x")], "contains '..'", "contains '..'"),
    Case("absolute", [Entry("/abs-file", data=b"x")], check=_only("abs-file")),
    Case(
        "symlink-then-write-through",
        [Entry("link", tarfile.SYMTYPE, link="/"), Entry("link/escaped", data=b"x")],
        "is not a directory",
        None,  # ADD: the symlink resolves inside the root: /escaped, inside
    ),
    Case(
        "relative-symlink-out",
        [Entry("up", tarfile.SYMTYPE, link="../../../.."), Entry("up/escaped", data=b"x")],
        "is not a directory",
        None,
    ),
    Case(
        "symlink-dir-swap",
        [
            Entry("d", tarfile.DIRTYPE, mode=0o755),
            Entry("d", tarfile.SYMTYPE, link="/"),
            Entry("d/escaped", data=b"x"),
        ],
        "is not a directory",
        None,
    ),
    Case(
        "hardlink-outside-abs",
        [Entry("h", tarfile.LNKTYPE, link="/etc/passwd")],
        "not an earlier entry",
        "does not exist in the destination",
    ),
    Case(
        "hardlink-outside-dotdot",
        [Entry("h", tarfile.LNKTYPE, link="../../../etc/passwd")],
        "contains '..'",
        "contains '..'",
    ),
    Case(
        "hardlink-through-symlink",
        [Entry("s", tarfile.SYMTYPE, link="/etc"), Entry("h", tarfile.LNKTYPE, link="s/passwd")],
        "not an earlier entry",
        "does not exist in the destination",
    ),
    Case("whiteout-dotdot", [Entry(".wh..."), Entry("x", data=b"1")], "invalid whiteout", None),
    Case("whiteout-escape", [Entry("../.wh.etc")], "contains '..'", "contains '..'"),
    Case("whiteout-dot", [Entry("a/.wh..", data=b"")], "invalid whiteout", None),
    Case(
        "root-dot-symlink",  # CVE-2021-29136: "/." as a symlink must not replace the root
        [Entry(".", tarfile.SYMTYPE, link="/etc"), Entry("x", data=b"1")],
        check=_only("x"),
    ),
    Case(
        "root-slash-dot-symlink",
        [Entry("/.", tarfile.SYMTYPE, link="/etc"), Entry("y", data=b"1")],
        check=_only("y"),
    ),
    Case("device-node", [Entry("dev/null", tarfile.CHRTYPE, mode=0o666)], check=None),
    Case(
        "dev-symlink",  # an image whose /dev is a symlink out (CVE-2026-41579 class)
        [Entry("dev", tarfile.SYMTYPE, link="/tmp"), Entry("dev/pwn", data=b"x")],
        "is not a directory",
        None,
    ),
    Case(
        "symlink-dotdot-into-dest",  # ADD: "up -> .." resolves inside the destination dir
        [Entry("up", tarfile.SYMTYPE, link=".."), Entry("up/etc/x", data=b"x")],
        "is not a directory",
        None,
        archive_check=lambda d: _link_and_content(d, "up", "..", "etc/x", b"x"),
    ),
    Case(
        "symlink-abs-into-dest",  # ADD: an absolute link is the destination's own path
        [Entry("e", tarfile.SYMTYPE, link="/etc"), Entry("e/passwd", data=b"pw")],
        "is not a directory",
        None,
        archive_check=lambda d: _expect_content(d, "etc/passwd", b"pw"),
    ),
    Case("empty-name", [Entry("", data=b"x")], check=_only()),
    Case(
        "duplicate-entry",
        [Entry("dup", data=b"first"), Entry("dup", data=b"second")],
        check=lambda d: _expect_content(d, "dup", b"second"),
    ),
    Case(
        "size-lies-longer",
        [Entry("f", data=b"abc", size=1 << 20)],
        "cannot read archive",
        "cannot read archive",
    ),
    Case(
        "pax-huge-size",
        [Entry("f", data=b"x", pax={"size": "9" * 30})],
        "bytes free",
        "bytes free",
    ),
    Case(
        "pax-negative-uid", [Entry("f", data=b"x", pax={"uid": "-1"})], "invalid uid", "invalid uid"
    ),
    Case(
        "pax-huge-uid",
        [Entry("f", data=b"x", pax={"uid": str(2**40)})],
        "invalid uid",
        "invalid uid",
    ),
    Case(  # tarfile skips a record it cannot parse: no error, and nothing escapes
        "pax-malformed-record",
        raw=lambda: _malformed_pax(),
        layer_error=ANY,
        archive_error=ANY,
    ),
    Case("sparse-terabyte", raw=_sparse_huge, layer_error="bytes free", archive_error="bytes free"),
    Case(
        "tar-bomb",
        raw=_tar_bomb,
        layer_error="more than 1000 entries",
        archive_error="more than 1000 entries",
    ),
    Case(
        "symlink-loop",
        [
            Entry("a", tarfile.SYMTYPE, link="b"),
            Entry("b", tarfile.SYMTYPE, link="a"),
            Entry("a/x"),
        ],
        "is not a directory",
        "too many levels",
    ),
    Case(
        "not-a-tar",
        raw=lambda: b"\x00garbage" * 100,
        layer_error="invalid header",
        archive_error="invalid header",
    ),
]


def _expect_content(dest: str, name: str, data: bytes) -> None:
    with open(os.path.join(dest, name), "rb") as f:
        assert f.read() == data


def _malformed_pax() -> bytes:
    raw = bytearray(make_tar([Entry("f", data=b"x", pax={"comment": "c"})]))
    # first block is the pax header; corrupt its record length field
    body = 512
    raw[body : body + 3] = b"999"
    return bytes(raw)


def snapshot(top: str) -> dict[str, tuple[int, int, int, bytes]]:
    out: dict[str, tuple[int, int, int, bytes]] = {}
    for dirpath, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            data = b""
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    data = f.read()
            elif stat.S_ISLNK(st.st_mode):
                data = os.readlink(path).encode()
            out[os.path.relpath(path, top)] = (st.st_mode, st.st_uid, st.st_ino, data)
    return out


@dataclass
class Outcome:
    case: str
    mode: str  # "layer" or "archive"
    error: str | None
    escaped: list[str]
    ok: bool


def run_case(case: Case, mode: str, workdir: str) -> Outcome:
    """Apply ``case`` inside ``workdir/box``; the sentinel tree ``workdir/outside``
    (and the rest of ``workdir``) must not change."""
    box = os.path.join(workdir, "box")
    dest = os.path.join(box, "dest")
    outside = os.path.join(workdir, "outside")
    os.makedirs(dest)
    os.makedirs(os.path.join(outside, "etc"))
    with open(os.path.join(outside, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0::/root:/bin/sh\n")
    before = snapshot(workdir)
    error: str | None = None
    try:
        data = io.BytesIO(case.data())
        if mode == "layer":
            apply_layer(data, dest)
        else:
            # ADD into a dir of the image root: entries are confined to that dir, so
            # anything written in box (the root) outside box/dest is an escape too.
            extract_archive(data, box, "dest")
    except LayerError as exc:
        error = exc.message
    after = snapshot(workdir)
    escaped = sorted(
        k
        for k in set(before) | set(after)
        if not k.startswith("box/dest") and k != "box" and before.get(k) != after.get(k)
    )
    expected = case.layer_error if mode == "layer" else case.archive_error
    ok = not escaped
    if expected is None:
        ok = ok and error is None
        check = case.check if mode == "layer" else case.archive_check
        if ok and check is not None:
            try:
                check(dest)
            except (AssertionError, OSError):
                ok = False
    elif expected != ANY:
        ok = ok and error is not None and expected in error
    return Outcome(case.name, mode, error, escaped, ok)


def run_all() -> list[Outcome]:
    os.environ["OCIBUILD_MAX_LAYER_ENTRIES"] = "1000"
    out = []
    for case in CASES:
        for mode in ("layer", "archive"):
            with tempfile.TemporaryDirectory() as tmp:
                out.append(run_case(case, mode, tmp))
    return out


def main() -> int:
    results = run_all()
    escapes = sum(1 for r in results if r.escaped)
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"FAIL {r.case} ({r.mode}): error={r.error!r} escaped={r.escaped}")
    print(f"{len(results)} inputs ({len(CASES)} archives x layer/ADD), {escapes} escapes")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or escapes else 0


if __name__ == "__main__":
    raise SystemExit(main())
