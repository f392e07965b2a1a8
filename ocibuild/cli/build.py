"""``ocibuild build``."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from ocibuild import _record, api
from ocibuild.cli import build_compat, engine_build, observe
from ocibuild.cli.common import common_flags, kv, options_from, require_root
from ocibuild.cli.registry import add_tls_flag
from ocibuild.errors import OcibuildError
from ocibuild.observe.log import StreamReporter
from ocibuild.options import COMPRESSIONS, NETWORK_MODES, PULL_POLICIES


def register(sub: Any) -> None:
    b = sub.add_parser("build", help="build an image from a Dockerfile")
    common_flags(b)
    b.add_argument("-f", "--file", help="the Dockerfile (default CONTEXT/Dockerfile; - = stdin)")
    b.add_argument("-t", "--tag", action="append", default=[], help="name[:tag] (repeatable)")
    b.add_argument("--build-arg", action="append", default=[], type=kv, metavar="K=V")
    b.add_argument("--target", help="build up to this stage")
    b.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="id=ID[,src=FILE|,env=VAR]",
        help="a secret for RUN --mount=type=secret (never stored in the image)",
    )
    b.add_argument("--no-cache", action="store_true", help="do not reuse earlier step results")
    b.add_argument(
        "--network",
        choices=NETWORK_MODES,
        help="RUN steps' network: default (the build's own namespace, outbound through "
        "slirp4netns, no host loopback), none, or host (shares the host's network; "
        "RUN --network overrides it per step); or $OCIBUILD_NETWORK",
    )
    b.add_argument(
        "--no-cache-filter",
        action="append",
        default=[],
        metavar="STAGE",
        help="do not reuse step results in this stage (name or number; repeatable, "
        "or comma-separated)",
    )
    b.add_argument("--trace", metavar="FILE", help="write one JSON record per step to FILE")
    observe.add_build_flags(b)  # --explain, --report, --keep-failed, --check-reproducible...
    b.add_argument(
        "--cache-from",
        action="append",
        default=[],
        metavar="type=registry,ref=REF",
        help="also look steps up in the build cache stored in this registry ref (repeatable)",
    )
    b.add_argument(
        "--cache-to",
        action="append",
        default=[],
        metavar="type=registry,ref=REF[,mode=min|max]",
        help="export the build's step cache to this registry ref after the build "
        "(mode=min: the target stage's steps, the default; max: every stage)",
    )
    b.add_argument(
        "--output",
        "-o",
        help="type=oci|oci-archive|docker-archive|tar|local,dest=PATH, or "
        "type=registry[,name=REF]: also export (or push) the image",
    )
    b.add_argument(
        "--pull",
        action="store_const",
        const="always",
        help=f"always pull FROM images (--pull={'|'.join(PULL_POLICIES)}: the policy; "
        "default missing)",
    )
    b.add_argument("--push", action="store_true", help="push every -t name after the build")
    add_tls_flag(b)
    b.add_argument("--compression", choices=COMPRESSIONS, help="layer compression on export")
    b.add_argument("-q", "--quiet", action="store_true", help="do not print step output")
    build_compat.add_flags(b)  # --iidfile, --metadata-file, --label, --platform, --progress...
    b.add_argument(
        "context",
        help="the build context directory; - reads a Dockerfile or a tar archive from "
        "standard input; or a git URL",
    )
    b.set_defaults(func=cmd_build, supervise=True)


def cmd_build(args: argparse.Namespace) -> int:
    with observe.html_report(args):  # --report-html, drawn whether the build fails or not
        return _build(args)


def _build(args: argparse.Namespace) -> int:
    api.check_tags(args.tag)  # a bad name is refused before anything runs
    platforms = build_compat.check_platforms(args.platform) if args.platform else []
    api.platform_jobs(args.platform_jobs, platforms)  # a bad --platform-jobs: refused first
    labels = dict(kv(text) for text in args.label)
    build_contexts = api.parse_build_contexts(args.build_context)
    output = api.Output.parse(args.output) if args.output else None
    annotations = api.parse_annotations(args.annotation)
    if annotations:
        if output is None or output.type not in ("oci", "oci-archive"):
            raise OcibuildError(
                "--annotation annotates the manifest of an OCI output",
                hint="add --output type=oci,dest=DIR or type=oci-archive,dest=FILE",
            )
        output = _record.replace(output, annotations=annotations)
    build_compat.check_multi_output(output, platforms)
    build_compat.check_setup(args, options_from(args).root, output)
    why = engine_build.selected(args)  # --isolation docker-with-fuse, or auto's fallback
    if why is not None:
        return engine_build.cmd_build(args, output, why)
    require_root(args)
    quiet = args.quiet or args.progress == "quiet"
    options = options_from(
        args,
        secrets=args.secret,
        ssh=args.ssh,
        add_hosts=args.add_host,
        ulimits=args.ulimit,
        shm_size=args.shm_size,
        compression=args.compression,
        quiet=quiet,
        no_cache=args.no_cache,
        no_cache_filter=tuple(
            n.strip() for item in args.no_cache_filter for n in item.split(",") if n.strip()
        ),
        trace=args.trace,
        cache_from=args.cache_from,
        cache_to=args.cache_to,
        pull=args.pull,
        tls_verify=args.tls_verify,
        network=args.network,
        **observe.build_options(args),
    )
    reporter = build_compat.make_reporter(args.progress, options.quiet, options.debug)
    reporter = reporter or StreamReporter(debug=options.debug)
    if args.check_reproducible:
        return observe.check_reproducible(args, options, reporter)
    started = time.monotonic()
    with build_compat.materialize(args.context) as context:
        dockerfile = args.file
        if dockerfile and args.context == "-" and dockerfile != "-":
            dockerfile = os.path.join(context.directory, dockerfile)  # inside the archive
        if context.dockerfile_text is not None and dockerfile not in (None, "-"):
            raise OcibuildError(
                "standard input held a Dockerfile, not a context archive: -f is not used",
                hint="leave -f out, or pipe a tar archive of the context",
            )
        common: dict[str, Any] = {
            "dockerfile": dockerfile if context.dockerfile_text is None else None,
            "dockerfile_text": context.dockerfile_text,
            "build_args": dict(args.build_arg),
            "target": args.target,
            "options": options,
            "reporter": reporter,
            "labels": labels,
            "build_contexts": build_contexts,
        }
        if len(platforms) > 1:  # one build per platform, one image index over them
            result = api.build_platforms(
                context.directory,
                platforms=platforms,
                jobs=args.platform_jobs,
                tags=args.tag,
                output=output,
                push=args.push,
                **common,
            )
        else:
            result = api.build(
                context.directory,
                tags=args.tag,
                output=output,
                push=args.push,
                platform=platforms[0] if platforms else None,
                **common,
            )
    build_compat.write_results(args, result.image_id, result.tags, output)
    if written := build_compat.describe_output(output):
        reporter.info(written)
    layers = sum(1 for s in result.steps if s.diff_id and s.cache != "hit")
    cached = sum(1 for s in result.steps if s.cache == "hit")
    reporter.info(
        f"built {result.image_id} ({layers} new layers, {cached} steps cached) "
        f"in {time.monotonic() - started:.2f}s"
        + (f", tagged {', '.join(result.tags)}" if result.tags else "")
        + f"; build {result.build_id}"
    )
    if output is None or output.dest != "-":  # with -o -, standard output is the archive
        print(result.image_id)
    return 0
