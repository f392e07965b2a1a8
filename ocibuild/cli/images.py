"""Image commands: images, inspect, rmi, run, parse."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ocibuild import api
from ocibuild.cli.common import common_flags, options_from, require_root
from ocibuild.dockerfile.parser import dump_buildkit, parse, to_json
from ocibuild.image.store import Store
from ocibuild.log import StreamReporter, human_size


def register(sub: Any) -> None:
    s = sub.add_parser("images", help="list images in the store")
    common_flags(s)
    s.set_defaults(func=cmd_images)
    s = sub.add_parser("inspect", help="print an image's config JSON")
    common_flags(s)
    s.add_argument("name")
    s.set_defaults(func=cmd_inspect)
    s = sub.add_parser("rmi", help="remove image names")
    common_flags(s)
    s.add_argument("names", nargs="+")
    s.set_defaults(func=cmd_rmi)
    r = sub.add_parser("run", help="run an image's command")
    common_flags(r)
    r.add_argument("--rm", action="store_true", help="discard the container's changes (default)")
    r.add_argument("-u", "--user", help="user[:group] to run as")
    r.add_argument("-e", "--env", action="append", default=[], help="KEY=VALUE")
    r.add_argument("name")
    r.add_argument("cmd", nargs=argparse.REMAINDER)
    r.set_defaults(func=cmd_run, supervise=True)
    p = sub.add_parser("parse", help="print a Dockerfile's parsed instructions")
    p.add_argument(
        "--format",
        choices=("json", "buildkit"),
        default="json",
        help="json: the typed, checked instructions (default); buildkit: BuildKit's "
        "parser.Parse dump, as in its parser tests (no instruction checks)",
    )
    p.add_argument("file")
    p.set_defaults(func=cmd_parse)


def cmd_images(args: argparse.Namespace) -> int:
    store = Store(options_from(args).root)
    rows = [("NAME", "IMAGE ID", "CREATED", "SIZE")]
    for tags, image_id, created, size in store.list_images():
        for tag in tags or ["<none>"]:
            rows.append((tag, image_id[7:19], created, human_size(size)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    store = Store(options_from(args).root)
    image_id = store.resolve(args.name)
    config = store.get_config(image_id)
    print(json.dumps({"Id": image_id, **config}, indent=2))
    return 0


def cmd_rmi(args: argparse.Namespace) -> int:
    require_root(args)  # as an ordinary user: in the build's user namespace, as build does
    store = Store(options_from(args).root)
    for name in args.names:
        store.remove_image(name)
        print(f"untagged {name}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    require_root()
    options = options_from(args)
    out = sys.stdout.buffer

    def emit(data: bytes) -> None:
        out.write(data)
        out.flush()

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    from ocibuild.container import run_image  # the runtime machinery: only for `run`

    return run_image(
        args.name,
        cmd,
        options=options,
        on_output=emit,
        reporter=StreamReporter(debug=options.debug),
        user=args.user,
        env=args.env,
    )


def cmd_parse(args: argparse.Namespace) -> int:
    text, name = api.read_dockerfile(args.file, ".")
    if args.format == "buildkit":  # the parser's AST only, as BuildKit's parser tests
        sys.stdout.write(dump_buildkit(text, name))
        return 0
    print(json.dumps(to_json(parse(text, name)), indent=2, ensure_ascii=False))
    return 0
