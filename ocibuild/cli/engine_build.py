"""``ocibuild build --isolation docker-with-fuse``: the host's half (see ocibuild/engine.py).

The build runs in the ocibuild image; its image is imported into the host's store, then
tagged, exported and pushed here exactly as a native build's would be.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from typing import Any

from ocibuild.cli import build_compat, observe
from ocibuild.cli.common import options_from
from ocibuild.errors import OcibuildError
from ocibuild.observe.log import StreamReporter


def selected(args: argparse.Namespace) -> str | None:
    """Why the build runs in a container (None: natively)."""
    wanted = args.isolation or os.environ.get("OCIBUILD_ISOLATION") or "auto"
    if wanted != "docker-with-fuse" and (wanted != "auto" or os.geteuid() == 0):
        return None  # (engine.fallback_reason's answer, without importing it: start-up)
    from ocibuild import engine

    return engine.fallback_reason(args.isolation)


def cmd_build(args: argparse.Namespace, output: Any, why: str) -> int:
    from ocibuild import api, engine
    from ocibuild.image.store import Store

    options = options_from(
        args,
        secrets=args.secret,
        compression=args.compression,
        quiet=args.quiet or args.progress == "quiet",
        tls_verify=args.tls_verify,
        **observe.build_options(args),
    )
    reporter = build_compat.make_reporter(args.progress, options.quiet, options.debug)
    reporter = reporter or StreamReporter(debug=options.debug)
    if why != "asked for":
        print(f"isolation: auto -> {engine.MODE}: {why}", file=sys.stderr)
    else:
        reporter.debug(f"isolation: {engine.MODE} (asked for)")
    tags = api.check_tags(args.tag)
    store_mode = engine.store_mode()
    if store_mode == "none":
        check_archive_only(args, output, tags)
    started = time.monotonic()
    with build_compat.materialize(args.context) as context:
        if context.dockerfile_text is not None:  # a Dockerfile on standard input
            args.file = os.path.join(context.directory, "Dockerfile.stdin")
            with open(args.file, "w", encoding="utf-8") as f:
                f.write(context.dockerfile_text)
        if context.directory != args.context:  # a temporary copy (0700): the container's
            os.chmod(context.directory, 0o755)  # user reads it through a read-only mount
        request = engine.request_from_args(args, options, context.directory)
        image_id, archive = engine.build(request, options, reporter, store_mode=store_mode)
    if archive is not None:  # no store here: the outputs come from the container's archive
        try:
            write_from_archive(archive, output)
        finally:
            shutil.rmtree(os.path.dirname(archive), ignore_errors=True)
    else:
        store = Store(options.root)
        for tag in tags:
            store.tag(tag, image_id)
        if output is not None:
            api.write_output(store, image_id, output, tags, options, reporter)
        if args.push:
            api.write_output(store, image_id, api.Output("registry"), tags, options, reporter)
    build_compat.write_results(args, image_id, tags, output)
    reporter.info(
        f"built {image_id} in a container ({engine.MODE}) in "
        f"{time.monotonic() - started:.2f}s" + (f", tagged {', '.join(tags)}" if tags else "")
    )
    if output is None or output.dest != "-":
        print(image_id)
    return 0


def check_archive_only(args: argparse.Namespace, output: Any, tags: list[str]) -> None:
    """Without a user namespace an ordinary user's store cannot hold the image's files
    (owned by other ids): only an OCI output, written from the container's archive."""
    if tags or args.push or output is None or output.type not in ("oci", "oci-archive"):
        raise OcibuildError(
            "without user namespaces this store cannot hold the image (its files belong to "
            "other users): -t, --push and other outputs are not possible here",
            hint="give --output type=oci-archive,dest=FILE (or type=oci,dest=DIR), or build "
            "as root, or where user namespaces work",
        )


def write_from_archive(archive: str, output: Any) -> None:
    from ocibuild import engine

    if output.type == "oci-archive":
        if output.dest == "-":
            with open(archive, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
            sys.stdout.buffer.flush()
        else:
            shutil.copyfile(archive, output.dest)
    else:
        engine.extract_layout(archive, output.dest)
