"""The diffID of an overlay upper dir, computed by streaming its tar into sha256 only."""

from __future__ import annotations

import os

from ocibuild._record import dataclass
from ocibuild.errors import LayerError
from ocibuild.layers.compress import DigestingSink
from ocibuild.layers.tarwriter import TreeStats, write_tree


@dataclass(frozen=True)
class LayerDigest:
    """diffID and uncompressed size of a layer; ``empty`` when the tree held no entries."""

    diff_id: str
    size: int
    stats: TreeStats
    empty: bool


def digest_upper(upper: str, source_date_epoch: int | None) -> LayerDigest:
    """Tar ``upper`` (overlay upper-dir form) into sha256 without writing the tar anywhere."""
    try:
        empty = not os.listdir(upper)
    except OSError as e:
        raise LayerError(f"cannot read upper dir {upper}: {e}") from e
    sink = DigestingSink("none")
    stats = write_tree(upper, sink, mode="upper", source_date_epoch=source_date_epoch)
    sink.close()
    return LayerDigest(diff_id=sink.diff_id, size=sink.size, stats=stats, empty=empty)
