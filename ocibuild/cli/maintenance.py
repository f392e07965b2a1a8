"""Store maintenance: fsck and prune."""

from __future__ import annotations

import argparse
from typing import Any

from ocibuild.cli.common import common_flags, options_from, require_root
from ocibuild.image.store import Store


def register(sub: Any) -> None:
    f = sub.add_parser("fsck", help="check the store: blobs, tags, layers, leftovers")
    common_flags(f)
    f.add_argument("--full", action="store_true", help="also re-hash every layer's content")
    f.add_argument("--json", action="store_true", help="findings as JSON")
    f.set_defaults(func=cmd_fsck)
    p = sub.add_parser("prune", help="remove what dead processes left behind")
    common_flags(p)
    p.add_argument(
        "--all",
        action="store_true",
        help="also remove layers and blobs no image uses, and the RUN cache mounts",
    )
    p.add_argument(
        "--cache-mounts", action="store_true", help="also remove the RUN --mount=type=cache dirs"
    )
    p.set_defaults(func=cmd_prune)


def cmd_fsck(args: argparse.Namespace) -> int:
    from ocibuild.image.fsck import fsck, to_json

    store = Store(options_from(args).root)
    findings = fsck(store, full=args.full)
    if args.json:
        print(to_json(findings))
    else:
        for finding in findings:
            print(finding)
        print(f"{len(findings)} problems found" if findings else "store is consistent")
    return 1 if findings else 0


def cmd_prune(args: argparse.Namespace) -> int:
    from ocibuild.prune import prune

    require_root(args)  # an ordinary user's layers hold subordinate ids: prune in its userns

    store = Store(options_from(args).root)
    report = prune(store, everything=args.all, cache_mounts=args.cache_mounts)
    for line in report.lines():
        print(line)
    if not report.lines():
        print("nothing to prune")
    return 0
