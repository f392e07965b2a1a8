"""Command line: the only place that prints errors and chooses exit codes."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType

from ocibuild import api
from ocibuild.container import run_image
from ocibuild.dockerfile.parser import dump_buildkit, parse, to_json
from ocibuild.errors import Interrupted, OcibuildError
from ocibuild.image.store import Store
from ocibuild.log import StreamReporter
from ocibuild.options import COMPRESSIONS, Options


def _kv(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if not sep:
        value = os.environ.get(key, "")  # docker build --build-arg NAME takes it from the env
    return key, value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", help="store directory (default: $OCIBUILD_ROOT or /var/lib/ocibuild)")
    p.add_argument("--runtime", help="OCI runtime: runc (default), crun or a path")
    p.add_argument("--debug", action="store_true", help="print mounts and runtime commands")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocibuild", description="Build OCI images from Dockerfiles, without a daemon."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("build", help="build an image from a Dockerfile")
    _common(b)
    b.add_argument("-f", "--file", help="the Dockerfile (default CONTEXT/Dockerfile; - = stdin)")
    b.add_argument("-t", "--tag", action="append", default=[], help="name[:tag] (repeatable)")
    b.add_argument("--build-arg", action="append", default=[], type=_kv, metavar="K=V")
    b.add_argument("--target", help="build up to this stage")
    b.add_argument("--no-cache", action="store_true", help="do not reuse earlier step results")
    b.add_argument("--output", "-o", help="type=oci,dest=DIR: also write an OCI image layout")
    b.add_argument("--compression", choices=COMPRESSIONS, help="layer compression on export")
    b.add_argument("-q", "--quiet", action="store_true", help="do not print step output")
    b.add_argument("context", help="the build context directory")

    s = sub.add_parser("images", help="list images in the store")
    _common(s)
    s = sub.add_parser("inspect", help="print an image's config JSON")
    _common(s)
    s.add_argument("name")
    s = sub.add_parser("rmi", help="remove image names")
    _common(s)
    s.add_argument("names", nargs="+")
    r = sub.add_parser("run", help="run an image's command")
    _common(r)
    r.add_argument("--rm", action="store_true", help="discard the container's changes (default)")
    r.add_argument("-u", "--user", help="user[:group] to run as")
    r.add_argument("-e", "--env", action="append", default=[], help="KEY=VALUE")
    r.add_argument("name")
    r.add_argument("cmd", nargs=argparse.REMAINDER)
    p = sub.add_parser("parse", help="print a Dockerfile's parsed instructions")
    p.add_argument("--format", choices=("json", "buildkit"), default="json")
    p.add_argument("file")
    return parser


def _options(args: argparse.Namespace, **extra: object) -> Options:
    return Options.resolve(
        root=getattr(args, "root", None),
        runtime=getattr(args, "runtime", None),
        debug=getattr(args, "debug", False),
        **extra,  # type: ignore[arg-type]
    )


def _require_root() -> None:
    if os.geteuid() != 0:
        raise OcibuildError(
            "building and running need root for now",
            hint="run as root (sudo); rootless builds arrive with the isolation modes",
        )


def cmd_build(args: argparse.Namespace) -> int:
    _require_root()
    options = _options(args, compression=args.compression, quiet=args.quiet, no_cache=args.no_cache)
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


def cmd_images(args: argparse.Namespace) -> int:
    store = Store(_options(args).root)
    rows = [("NAME", "IMAGE ID", "CREATED", "SIZE")]
    for tags, image_id, created, size in store.list_images():
        for tag in tags or ["<none>"]:
            rows.append((tag, image_id[7:19], created, _human(size)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def cmd_inspect(args: argparse.Namespace) -> int:
    store = Store(_options(args).root)
    image_id = store.resolve(args.name)
    config = store.get_config(image_id)
    print(json.dumps({"Id": image_id, **config}, indent=2))
    return 0


def cmd_rmi(args: argparse.Namespace) -> int:
    store = Store(_options(args).root)
    for name in args.names:
        store.remove_image(name)
        print(f"untagged {name}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    _require_root()
    options = _options(args)
    out = sys.stdout.buffer

    def emit(data: bytes) -> None:
        out.write(data)
        out.flush()

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
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
    df = parse(text, name)
    if args.format == "buildkit":
        sys.stdout.write(dump_buildkit(df))
    else:
        print(json.dumps(to_json(df), indent=2, ensure_ascii=False))
    return 0


COMMANDS = {
    "build": cmd_build,
    "images": cmd_images,
    "inspect": cmd_inspect,
    "rmi": cmd_rmi,
    "run": cmd_run,
    "parse": cmd_parse,
}


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Interrupted as exc:
        print("\nterminated", file=sys.stderr)
        return exc.exit_code
    except OcibuildError as exc:
        print(f"error: {exc.format()}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
