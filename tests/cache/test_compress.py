"""Parallel gzip on export: a valid gzip any gunzip reads, the same bytes whatever the
number of threads, and about the size of a single zlib stream."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import zlib

from ocibuild.layers.compress import DigestingSink, ParallelGzip


def _data() -> bytes:
    text = b"".join(b"line %d of a fairly compressible layer\n" % i for i in range(120_000))
    return text + os.urandom(700_000) + text[:1_000_000]


def _compress(comp: ParallelGzip, data: bytes) -> bytes:
    out = bytearray()
    for i in range(0, len(data), 300_000):  # writes not aligned to the 1 MiB blocks
        out += comp.compress(memoryview(data)[i : i + 300_000])
    return bytes(out + comp.flush())


def test_parallel_gzip_is_valid_deterministic_and_close_to_zlib(tmp_path: object) -> None:
    data = _data()
    one = _compress(ParallelGzip(1, 1), data)
    two = _compress(ParallelGzip(1, 2), data)
    assert one == two
    assert gzip.decompress(two) == data
    proc = subprocess.run(["gzip", "-dc"], input=two, capture_output=True, check=True)
    assert proc.stdout == data
    single = zlib.compressobj(1, zlib.DEFLATED, 31)
    reference = single.compress(data) + single.flush()
    assert len(two) < len(reference) * 1.02


def test_digesting_sink_gzip_digests_match_the_bytes() -> None:
    data = _data()
    chunks: list[bytes] = []

    class Out:
        def write(self, b: bytes) -> int:
            chunks.append(bytes(b))
            return len(b)

    sink = DigestingSink("gzip", Out(), threads=2)  # type: ignore[arg-type]
    sink.write(data)
    sink.close()
    blob = b"".join(chunks)
    assert sink.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert sink.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert gzip.decompress(blob) == data and sink.compressed_size == len(blob)


def test_empty_input_is_a_valid_gzip() -> None:
    assert gzip.decompress(_compress(ParallelGzip(1, 2), b"")) == b""


def test_blocks_do_not_depend_on_write_sizes() -> None:
    """Whatever the sizes of the writes (a tar writer's buffers, 1 MiB reads of a blob,
    one big write), the same input gives the same blocks and the same bytes."""
    data = _data() * 2
    outputs = set()
    for size in (1000, 300_000, 1 << 20, (1 << 20) + 1, 3 << 20, len(data)):
        blocks: list[bytes] = []
        comp = ParallelGzip(1, 2, tap=blocks.append)
        out = bytearray(comp.compress(data[:size]))
        for i in range(size, len(data), size):
            out += comp.compress(memoryview(data)[i : i + size])
        out += comp.flush()
        outputs.add(bytes(out))
        assert b"".join(blocks) == data
        assert all(len(b) == 1 << 20 for b in blocks[:-1]) and len(blocks[-1]) < 1 << 20
    assert len(outputs) == 1
    assert gzip.decompress(outputs.pop()) == data


class _Collect:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, b: bytes | bytearray | memoryview) -> int:
        self.chunks.append(bytes(b))
        return len(b)


def test_digesting_sink_hashes_what_was_written_into_a_reused_buffer() -> None:
    """The tar writer reuses its read buffer once ``write`` returns: the hashes made on
    other threads must be of the bytes as they were written, whatever the thread count."""
    data = _data()
    results = set()
    for threads in (1, 2):
        out = _Collect()
        sink = DigestingSink("gzip", out, threads=threads)
        buf = bytearray(200_000)
        for i in range(0, len(data), len(buf)):
            piece = data[i : i + len(buf)]
            buf[: len(piece)] = piece
            sink.write(memoryview(buf)[: len(piece)])
            buf[:] = bytes(len(buf))  # the writer overwrites its buffer right away
        sink.close()
        blob = b"".join(out.chunks)
        assert sink.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
        assert sink.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
        assert gzip.decompress(blob) == data
        results.add((sink.digest, sink.compressed_size, sink.size))
    assert len(results) == 1
