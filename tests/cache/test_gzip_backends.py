"""gzip through ISA-L (``isal``) with zlib as the fallback: both produce one valid gzip
member that gzip(1) reads, each is deterministic whatever the number of threads, each reads
what the other wrote, and a corrupt stream is the same error for both."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import zlib
from typing import BinaryIO, cast

import pytest

from ocibuild.layers import compress
from ocibuild.layers.compress import DigestingSink, ParallelGzip, gzip_backend, open_decompressed


def _data() -> bytes:
    text = b"".join(b"entry %d of a compressible layer /usr/lib/x\n" % i for i in range(90_000))
    return text + os.urandom(600_000) + text[:1_500_000]


def _gz(comp: ParallelGzip, data: bytes) -> bytes:
    out = bytearray()
    for i in range(0, len(data), 250_000):  # not aligned to the 1 MiB blocks
        out += comp.compress(memoryview(data)[i : i + 250_000])
    return bytes(out + comp.flush())


def _gunzip(blob: bytes) -> bytes:
    return open_decompressed(cast(BinaryIO, io.BytesIO(blob))).read()


def test_isal_is_the_default_backend() -> None:
    assert gzip_backend() == "isal"  # isal is a dependency (pyproject.toml)
    assert ParallelGzip(1, 1).backend == "isal"


@pytest.mark.parametrize("backend", ["isal", "zlib"])
def test_each_backend_is_valid_and_deterministic(backend: compress.GzipBackend) -> None:
    data = _data()
    one = _gz(ParallelGzip(1, 1, backend=backend), data)
    two = _gz(ParallelGzip(1, 2, backend=backend), data)
    again = _gz(ParallelGzip(1, 2, backend=backend), data)
    assert one == two == again
    assert gzip.decompress(two) == data
    subprocess.run(["gzip", "-t"], input=two, check=True)
    proc = subprocess.run(["gzip", "-dc"], input=two, capture_output=True, check=True)
    assert proc.stdout == data
    assert len(two) < len(data) * 0.6  # it compressed


def test_backends_read_each_other() -> None:
    data = _data()
    by_isal = _gz(ParallelGzip(1, 2, backend="isal"), data)
    by_zlib = _gz(ParallelGzip(1, 2, backend="zlib"), data)
    assert by_isal != by_zlib  # two different deflaters: two digests, each stable
    assert _gunzip(by_zlib) == data and _gunzip(by_isal) == data
    assert compress.gunzip_reader(io.BytesIO(by_isal), "zlib").read() == data  # type: ignore[arg-type]


def test_env_var_forces_zlib(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data()
    monkeypatch.setenv("OCIBUILD_GZIP", "zlib")
    assert gzip_backend() == "zlib"
    sink = DigestingSink("gzip", None, threads=2)
    sink.write(data)
    sink.close()
    expected = _gz(ParallelGzip(1, 1, backend="zlib"), data)
    assert sink.digest == "sha256:" + hashlib.sha256(expected).hexdigest()


def test_fallback_without_isal(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a machine without isal does: zlib both ways, same bytes as the zlib backend."""
    data = _data()
    monkeypatch.setattr(compress, "_isal_zlib", None)
    monkeypatch.setattr(compress, "_igzip", None)
    assert gzip_backend() == "zlib"
    comp = ParallelGzip(1, 2)
    assert comp.backend == "zlib"
    blob = _gz(comp, data)
    monkeypatch.undo()
    assert blob == _gz(ParallelGzip(1, 1, backend="zlib"), data)
    monkeypatch.setattr(compress, "_igzip", None)
    reader = _gunzip(blob)
    assert reader == data


def test_digesting_sink_is_reproducible() -> None:
    data = _data()
    digests = set()
    for threads in (1, 2, 2):
        sink = DigestingSink("gzip", None, threads=threads)
        for i in range(0, len(data), 65536):
            sink.write(data[i : i + 65536])
        sink.close()
        digests.add(sink.digest)
    assert len(digests) == 1


def test_multi_member_and_corrupt_streams() -> None:
    a, b = b"first member\n" * 1000, b"second member\n" * 1000
    assert _gunzip(gzip.compress(a) + gzip.compress(b)) == a + b
    good = _gz(ParallelGzip(1, 1), _data())
    corrupt = good[:4000] + bytes(4000) + good[8000:]
    with pytest.raises((zlib.error, gzip.BadGzipFile)):
        _gunzip(corrupt)
    with pytest.raises(EOFError):
        _gunzip(good[: len(good) // 2])


def test_isal_level_mapping() -> None:
    assert [compress.isal_level(n) for n in range(10)] == [0, 1, 2, 2, 2, 2, 2, 3, 3, 3]
