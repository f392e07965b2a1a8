"""``ocibuild history NAME``: each layer's size and the instruction that made it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ocibuild.cli.common import common_flags, options_from
from ocibuild.errors import OcibuildError
from ocibuild.image.store import Store
from ocibuild.observe.log import human_size


def register(sub: Any) -> None:
    h = sub.add_parser("history", help="show the steps that made an image, newest first")
    common_flags(h)
    h.add_argument("--no-trunc", action="store_true", help="do not shorten ids and commands")
    h.add_argument("--format", choices=("table", "json"), default="table")
    h.add_argument("name")
    h.set_defaults(func=cmd_history)


def image_history(store: Store, name: str) -> list[dict[str, Any]]:
    """One row per history entry, newest first: layer diffID (None for config-only
    steps), uncompressed size, created, created_by, comment."""
    image = store.get_image(store.resolve(name))
    diff_ids = iter(image.diff_ids)
    rows: list[dict[str, Any]] = []
    for entry in image.history:
        layer = None if entry.get("empty_layer") else next(diff_ids, None)
        size = 0
        if layer is not None:
            try:
                size = int(store.layer_info(layer).get("size") or 0)
            except OcibuildError:
                size = 0
        rows.append(
            {
                "layer": layer,
                "size": size,
                "created": entry.get("created", ""),
                "created_by": entry.get("created_by", ""),
                "comment": entry.get("comment", ""),
            }
        )
    rows.reverse()
    return rows


def cmd_history(args: argparse.Namespace) -> int:
    store = Store(options_from(args).root)
    rows = image_history(store, args.name)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    table = [("LAYER", "CREATED", "CREATED BY", "SIZE", "COMMENT")]
    for row in rows:
        layer = row["layer"] or "<none>"
        if layer != "<none>" and not args.no_trunc:
            layer = layer[7:19]
        by = " ".join(str(row["created_by"]).split())
        if not args.no_trunc and len(by) > 60:
            by = by[:57] + "..."
        size = human_size(row["size"]) if row["layer"] else "0 B"
        table.append((layer, str(row["created"]), by, size, str(row["comment"])))
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    for line in table:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return 0
