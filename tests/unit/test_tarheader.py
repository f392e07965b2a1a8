"""encode_header: its one-block path for common entries makes exactly the bytes of the
general path, and both read back with Python's tarfile as the values given."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocibuild.layers import tarheader as th

pytestmark = pytest.mark.unit

TYPES = [th.REGTYPE, th.LNKTYPE, th.SYMTYPE, th.DIRTYPE, th.FIFOTYPE, th.CHRTYPE]
# names around the 100-byte ustar limit, ASCII or not
names = st.one_of(
    st.integers(95, 105).map(lambda n: b"d/" + b"n" * (n - 2)),
    st.binary(min_size=1, max_size=120).filter(lambda b: b"\0" not in b),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=110).map(
        str.encode
    ),
)
# numbers at and around the octal field limits (8**7 for ids, 8**11 for size and mtime);
# most draws are common entries, so that the one-block path is taken often
ids = st.one_of(st.integers(0, 2000), st.sampled_from([0, 8**7 - 1, 8**7, 2**32 - 1]))
big = st.one_of(st.integers(0, 10**6), st.sampled_from([0, 8**11 - 1, 8**11, 2**40]))


@settings(max_examples=1500, deadline=None)
@given(
    name=names,
    mode=st.integers(0, 0o177777),
    uid=ids,
    gid=ids,
    size=big,
    mtime=big,
    typeflag=st.sampled_from(TYPES),
    linkname=st.one_of(st.just(b""), names, names),
    dev=st.sampled_from([(0, 0)] * 6 + [(1, 3), (0, 5), (259, 70000)]),
    xattrs=st.sampled_from([None] * 6 + [[], [(b"user.k", b"v")]]),
)
def test_one_block_path_makes_the_general_bytes(
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes,
    dev: tuple[int, int],
    xattrs: list[tuple[bytes, bytes]] | None,
) -> None:
    kw = dict(
        mode=mode, uid=uid, gid=gid, size=size, mtime=mtime, typeflag=typeflag,
        linkname=linkname, devmajor=dev[0], devminor=dev[1], xattrs=xattrs,
    )  # fmt: skip
    assert th.encode_header(name, **kw) == th.encode_header_general(name, **kw)  # type: ignore[arg-type]


def test_common_entry_reads_back() -> None:
    block = th.encode_header(
        b"small/f123", mode=0o100644, uid=1000, gid=50, size=4, mtime=1764460000,
        typeflag=th.REGTYPE,
    )  # fmt: skip
    assert len(block) == th.BLOCK
    data = block + b"123\n" + th.padding(4) + th.END_OF_ARCHIVE
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        (member,) = tf.getmembers()  # tarfile checks the checksum
        assert (member.name, member.mode, member.uid, member.gid, member.size, member.mtime) == (
            "small/f123", 0o644, 1000, 50, 4, 1764460000,
        )  # fmt: skip
        assert (member.uname, member.gname, member.isreg()) == ("", "", True)
        f = tf.extractfile(member)
        assert f is not None and f.read() == b"123\n"
