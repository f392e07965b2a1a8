"""Image commands: images, inspect, rmi, run, parse."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from ocibuild import api
from ocibuild.cli.common import common_flags, options_from, require_root
from ocibuild.dockerfile.parser import dump_buildkit, parse, to_json
from ocibuild.errors import OcibuildError
from ocibuild.image.store import Store
from ocibuild.observe.log import StreamReporter, human_size


def register(sub: Any) -> None:
    s = sub.add_parser("images", help="list images in the store")
    common_flags(s)
    s.add_argument("--format", choices=("table", "json"), default="table")
    s.set_defaults(func=cmd_images)
    s = sub.add_parser("save", help="write an image from the store to an archive")
    common_flags(s)
    s.add_argument(
        "-o",
        "--output",
        default="-",
        metavar="FILE",
        help="the archive to write (default -: standard output)",
    )
    s.add_argument(
        "--format",
        choices=("docker-archive", "oci-archive", "oci"),
        default="docker-archive",
        help="docker-archive (docker load reads it; default), oci-archive, oci (a directory)",
    )
    s.add_argument("name", help="image name or ID")
    s.set_defaults(func=cmd_save)
    s = sub.add_parser(
        "inspect",
        help="print an image's config JSON (a multi-platform name: its platforms too)",
    )
    common_flags(s)
    s.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="of a multi-platform name: that platform's image (default this machine's)",
    )
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
    r.add_argument(
        "-e", "--env", action="append", default=[], help="KEY=VALUE (KEY alone: from here)"
    )
    r.add_argument(
        "-i",
        "--interactive",
        action="store_true",
        help="pass standard input even from a terminal (a pipe or file is always passed)",
    )
    r.add_argument(
        "-t", "--tty", action="store_true", help="give the command a terminal (with -i: yours)"
    )
    r.add_argument(
        "-v",
        "--volume",
        action="append",
        default=[],
        metavar="HOST:CONTAINER[:ro]",
        help="bind-mount a host path",
    )
    r.add_argument("-w", "--workdir", help="working directory inside the container")
    r.add_argument("--entrypoint", help="replace the image's ENTRYPOINT (and its CMD)")
    r.add_argument(
        "--network", choices=("host", "none"), default="host", help="host (default) or none"
    )
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


def _platform(store: Store, image_id: str) -> str:
    """os/architecture[/variant] from the image's config ("" when it names none)."""
    try:
        image = store.get_image(image_id)
    except OcibuildError:
        return ""
    return "/".join(p for p in (image.os, image.architecture, image.variant) if p)


def _platform_text(platform: dict[str, str]) -> str:
    parts = (platform.get("os"), platform.get("architecture"), platform.get("variant"))
    return "/".join(p for p in parts if p)


def _platforms(images: list[tuple[str, dict[str, str]]]) -> list[dict[str, str]]:
    """A multi-platform name's images as JSON: [{"platform": "linux/arm64", "id": ...}]."""
    return [{"platform": _platform_text(p), "id": image_id} for image_id, p in images]


def cmd_images(args: argparse.Namespace) -> int:
    store = Store(options_from(args).root)
    indexes = store.indexes()  # multi-platform names -> their platforms' images
    if args.format == "json":
        docs = []
        for tags, image_id, created, size in store.list_images():
            doc: dict[str, Any] = {
                "names": tags,
                "id": image_id,
                "created": created,
                "size": size,
                "platform": _platform(store, image_id),
            }
            multi = next((indexes[t] for t in tags if t in indexes), None)
            if multi is not None:  # the platforms of its multi-platform name(s)
                doc["platforms"] = _platforms(multi)
            docs.append(doc)
        print(json.dumps(docs, indent=2))
        return 0
    rows = [("NAME", "IMAGE ID", "CREATED", "SIZE", "PLATFORM")]
    for tags, image_id, created, size in store.list_images():
        plat = _platform(store, image_id)
        for tag in tags or ["<none>"]:
            shown = plat
            if tag in indexes:  # a multi-platform name: every platform, this one first
                others = [_platform_text(p) for i, p in indexes[tag] if i != image_id]
                shown = ",".join([plat, *others])
            rows.append((tag, image_id[7:19], created, human_size(size), shown))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    from ocibuild.cli.build_compat import check_writable_dir, describe_output

    options = options_from(args)
    store = Store(options.root)
    image_id = store.resolve(args.name)
    names = [t for t, i in store.tags().items() if i == image_id]
    if args.name in names:
        names = [args.name]
    elif ":" not in args.name.rsplit("/", 1)[-1] and f"{args.name}:latest" in names:
        names = [f"{args.name}:latest"]
    if args.output == "-":
        if args.format == "oci":
            raise OcibuildError("--format oci writes a directory: give -o DIR")
        if sys.stdout.isatty():
            raise OcibuildError(
                "refusing to write an archive to a terminal",
                hint="redirect it (> image.tar) or give -o FILE",
            )
    else:
        target = (
            args.output if args.format == "oci" else os.path.dirname(os.path.abspath(args.output))
        )
        check_writable_dir(target, "output", "give -o a path in a writable directory")
    require_root(args)  # an ordinary user: in its user namespace (layers hold its subids)
    output = api.Output(args.format, args.output)
    multi = store.index_of(args.name)
    if multi is not None and args.format != "docker-archive":
        api.write_index_output(multi, output, names, options, StreamReporter())
    else:
        if multi is not None:
            _note_one_platform(args.name, store, image_id, multi)
        api.write_output(store, image_id, output, names, options, StreamReporter())
    if args.output != "-" and (written := describe_output(output)):
        print(written, file=sys.stderr)
    return 0


def _note_one_platform(
    name: str, store: Store, image_id: str, multi: list[tuple[str, dict[str, str]]]
) -> None:
    """A docker-archive has no image index: say which one platform of ``name`` it holds
    (the image the tag names: this machine's platform's), as ``docker save`` does."""
    have = ", ".join(_platform_text(p) for _, p in multi)
    one = _platform_text(_descriptor(store, image_id))
    print(
        f"note: {name} is a multi-platform image ({have}); a docker-archive holds one "
        f"platform: {one} is saved (--format oci-archive or oci saves them all)",
        file=sys.stderr,
    )


def cmd_inspect(args: argparse.Namespace) -> int:
    """The config of ``name`` (as ``Id`` + the config's keys); for a multi-platform name
    also ``Platforms`` (each platform's image ID), and ``--platform`` picks one of them."""
    store = Store(options_from(args).root)
    image_id = store.resolve(args.name)
    multi = store.index_of(args.name)
    if args.platform:
        image_id = _pick_platform(store, args.name, image_id, multi, args.platform)
    config = store.get_image(image_id).to_json()  # the stored document, field for field
    doc: dict[str, Any] = {"Id": image_id, **config}
    if multi is not None:
        doc["Platforms"] = [{"Platform": d["platform"], "Id": d["id"]} for d in _platforms(multi)]
    print(json.dumps(doc, indent=2))
    return 0


def _pick_platform(
    store: Store,
    name: str,
    image_id: str,
    multi: list[tuple[str, dict[str, str]]] | None,
    text: str,
) -> str:
    """The image of platform ``text`` that ``name`` names (its own, or its index's)."""
    from ocibuild.platforms import parse_platform

    wanted = parse_platform(text)
    choices = multi if multi is not None else [(image_id, _descriptor(store, image_id))]
    for candidate, platform in choices:
        if _platform_text(platform) == str(wanted):
            return candidate
    have = ", ".join(_platform_text(p) for _, p in choices) or "none named"
    raise OcibuildError(
        f"inspect --platform {wanted}: {name} has no {wanted} image (it has: {have})",
        hint="leave --platform out, or build it with --platform "
        + ",".join([*(_platform_text(p) for _, p in choices), str(wanted)]),
    )


def _descriptor(store: Store, image_id: str) -> dict[str, str]:
    config = store.get_config(image_id)
    return {k: str(config[k]) for k in ("architecture", "os", "variant") if config.get(k)}


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
    env = [e if "=" in e else f"{e}={os.environ.get(e, '')}" for e in args.env]
    stdin: int | None = None
    with contextlib.suppress(OSError, ValueError):
        fd = sys.stdin.fileno()
        if args.interactive or not (os.isatty(fd) or _is_devnull(fd)):
            stdin = fd
    from ocibuild.container import run_image  # the runtime machinery: only for `run`

    return run_image(
        args.name,
        cmd,
        options=options,
        on_output=emit,
        reporter=StreamReporter(debug=options.debug),
        user=args.user,
        env=env,
        entrypoint=args.entrypoint,
        workdir=args.workdir,
        volumes=args.volume,
        network=args.network,
        stdin=stdin,
        tty=args.tty,
    )


def _is_devnull(fd: int) -> bool:
    st, null = os.fstat(fd), os.stat(os.devnull)
    return (st.st_dev, st.st_ino) == (null.st_dev, null.st_ino)


def cmd_parse(args: argparse.Namespace) -> int:
    text, name = api.read_dockerfile(args.file, ".")
    if args.format == "buildkit":  # the parser's AST only, as BuildKit's parser tests
        sys.stdout.write(dump_buildkit(text, name))
        return 0
    print(json.dumps(to_json(parse(text, name)), indent=2, ensure_ascii=False))
    return 0
