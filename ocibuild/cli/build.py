"""``ocibuild build``."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ocibuild import api
from ocibuild.cli.common import common_flags, kv, options_from, require_root
from ocibuild.log import StreamReporter
from ocibuild.options import COMPRESSIONS


def register(sub: Any) -> None:
    b = sub.add_parser("build", help="build an image from a Dockerfile")
    common_flags(b)
    b.add_argument("-f", "--file", help="the Dockerfile (default CONTEXT/Dockerfile; - = stdin)")
    b.add_argument("-t", "--tag", action="append", default=[], help="name[:tag] (repeatable)")
    b.add_argument("--build-arg", action="append", default=[], type=kv, metavar="K=V")
    b.add_argument("--target", help="build up to this stage")
    b.add_argument("--no-cache", action="store_true", help="do not reuse earlier step results")
    b.add_argument("--output", "-o", help="type=oci,dest=DIR: also write an OCI image layout")
    b.add_argument("--compression", choices=COMPRESSIONS, help="layer compression on export")
    b.add_argument("-q", "--quiet", action="store_true", help="do not print step output")
    b.add_argument("context", help="the build context directory")
    b.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    require_root()
    options = options_from(
        args, compression=args.compression, quiet=args.quiet, no_cache=args.no_cache
    )
    output = api.Output.parse(args.output) if args.output else None
    reporter = StreamReporter(debug=options.debug, quiet=options.quiet)
    started = time.monotonic()
    result = api.build(
        args.context,
        dockerfile=args.file,
        tags=args.tag,
        build_args=dict(args.build_arg),
        target=args.target,
        output=output,
        options=options,
        reporter=reporter,
    )
    layers = sum(1 for s in result.steps if s.diff_id)
    reporter.info(
        f"built {result.image_id} ({layers} new layers) in {time.monotonic() - started:.2f}s"
        + (f", tagged {', '.join(result.tags)}" if result.tags else "")
    )
    print(result.image_id)
    return 0
