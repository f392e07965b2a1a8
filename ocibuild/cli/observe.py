"""Observability: ``builds``, ``report``, ``logs``, ``debug``, ``diff``, and the build flags
``--explain``, ``--report``, ``--report-html``, ``--keep-failed``, ``--keep-bundles``,
``--check-reproducible``, ``--source-date-epoch``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from ocibuild.cli.common import common_flags, options_from, require_root
from ocibuild.errors import OcibuildError
from ocibuild.observe.log import Reporter
from ocibuild.options import Options, parse_epoch


# -- ocibuild build flags --------------------------------------------------------------------------
def add_build_flags(b: argparse.ArgumentParser) -> None:
    b.add_argument(
        "--explain", action="store_true", help="print the full cache-key inputs of every step"
    )
    b.add_argument("--report", metavar="FILE", help="write a JSON report of the build to FILE")
    b.add_argument(
        "--report-html",
        metavar="FILE",
        help="write the build as one self-contained web page to FILE (timeline, time split, "
        "layer sizes, largest files, where it failed)",
    )
    b.add_argument(
        "--keep-failed",
        action="store_true",
        help="keep a failing RUN step's rootfs, bundle and runtime command "
        "(then: ocibuild debug BUILD)",
    )
    b.add_argument(
        "--keep-bundles", metavar="DIR", help="keep every RUN step's runtime bundle in DIR/step-N"
    )
    b.add_argument(
        "--check-reproducible",
        action="store_true",
        help="build twice in temporary stores and compare the images",
    )
    b.add_argument(
        "--source-date-epoch",
        metavar="SECONDS",
        help="SOURCE_DATE_EPOCH for this build (default: $SOURCE_DATE_EPOCH)",
    )


def build_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "explain": args.explain,
        "report": args.report,
        "keep_failed": args.keep_failed,
        "keep_bundles": args.keep_bundles,
        "source_date_epoch": parse_epoch(args.source_date_epoch),
    }


@contextlib.contextmanager
def html_report(args: argparse.Namespace) -> Iterator[None]:
    """``--report-html FILE``: the build's report (``--report``'s, in a temporary file
    if not asked for) drawn as a page once the build ends, whether it failed or not."""
    if not getattr(args, "report_html", None) or args.check_reproducible:
        yield
        return
    if args.report_html == "-":
        raise OcibuildError(
            "--report-html writes a file: standard output has the image ID",
            hint="give a file name (ocibuild report BUILD --html - prints a recorded one)",
        )
    target = os.path.abspath(args.report_html)
    if not os.path.isdir(os.path.dirname(target)):
        raise OcibuildError(
            f"--report-html {args.report_html}: directory {os.path.dirname(target)} does not exist"
        )
    import tempfile  # (only for this command)

    with tempfile.TemporaryDirectory(prefix="ocibuild-report-") as tmp:
        if not args.report:
            args.report = os.path.join(tmp, "report.json")
        pages = [(args.report, target)]  # several platforms: a report, a page each
        platforms = _platforms(getattr(args, "platform", None))
        if len(platforms) > 1:
            from ocibuild.api import platform_file

            pages = [(platform_file(args.report, p) or "", platform_file(target, p) or "")
                     for p in platforms]  # fmt: skip
        before = [_mtime(report) for report, _ in pages]
        try:
            yield
        finally:
            for (report, page), mtime in zip(pages, before, strict=True):
                if _mtime(report) != mtime:
                    with open(report, encoding="utf-8") as f:
                        doc = json.load(f)
                    write_html(doc, page)
                    if not (args.quiet or args.progress == "quiet"):
                        print(f"report: wrote {page} (build {doc.get('id')})", file=sys.stderr)


def _platforms(given: list[str] | None) -> list[str]:
    """The build's --platform values, normalised (a bad one: the build says so)."""
    from ocibuild.platforms import parse_platforms

    try:
        return [str(p) for p in parse_platforms(list(given or []))]
    except OcibuildError:
        return []


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def write_html(doc: dict[str, Any], path: str) -> None:
    from ocibuild.observe import html

    page = html.render(doc)
    if path == "-":
        sys.stdout.write(page)
        sys.stdout.flush()
        return
    from ocibuild.fs.atomic import write_atomic

    try:
        write_atomic(path, page)
    except OSError as e:
        raise OcibuildError(f"cannot write {path}: {e.strerror or e}") from None


def check_reproducible(args: argparse.Namespace, options: Options, reporter: Reporter) -> int:
    from ocibuild import reproducible

    verdict = reproducible.check(
        args.context,
        dockerfile=args.file,
        build_args=dict(args.build_arg),
        target=args.target,
        options=options,
        reporter=reporter,
    )
    print(verdict.message())
    return 0 if verdict.reproducible else 1


# -- commands ------------------------------------------------------------------------------------
def register(sub: Any) -> None:
    r = sub.add_parser(
        "report", help="a recorded build's report: JSON, or a web page with --html FILE"
    )
    common_flags(r)
    r.add_argument(
        "--html", metavar="FILE", help="write one self-contained web page to FILE (- : stdout)"
    )
    r.add_argument("build", help="build ID (or a unique prefix, or last)")
    r.set_defaults(func=cmd_report)

    b = sub.add_parser("builds", help="list recorded builds (newest last)")
    common_flags(b)
    b.add_argument("--format", choices=("table", "json"), default="table")
    b.add_argument("build", nargs="?", help="show this build's record (JSON)")
    b.set_defaults(func=cmd_builds)

    lg = sub.add_parser("logs", help="the full output of a build's steps")
    common_flags(lg)
    lg.add_argument("build", help="build ID (or a unique prefix, or last)")
    lg.add_argument("step", nargs="?", type=int, help="only this step's output")
    lg.set_defaults(func=cmd_logs)

    d = sub.add_parser("debug", help="a shell (or CMD) in a failed step kept by --keep-failed")
    common_flags(d)
    d.add_argument("--step", type=int, help="the failed step (default: the first kept)")
    d.add_argument("build", help="build ID (or a unique prefix, or last)")
    d.add_argument("cmd", nargs=argparse.REMAINDER, help="command to run (default /bin/sh)")
    d.set_defaults(func=cmd_debug, supervise=True)

    df = sub.add_parser("diff", help="files added, removed and changed between two images")
    common_flags(df)
    df.add_argument(
        "--layers",
        nargs=2,
        type=int,
        metavar=("N", "M"),
        help="compare layers N and M of image A (1 = bottom-most) instead",
    )
    df.add_argument("--format", choices=("text", "json"), default="text")
    df.add_argument("a", help="image (name or ID)")
    df.add_argument("b", nargs="?", help="the other image")
    df.set_defaults(func=cmd_diff)


def cmd_builds(args: argparse.Namespace) -> int:
    from ocibuild.observe.records import find_build, list_builds, read_build

    root = options_from(args).root
    if args.build:
        print(json.dumps(read_build(find_build(root, args.build)), indent=2))
        return 0
    builds = list_builds(root)
    if args.format == "json":
        print(json.dumps(builds, indent=2))
        return 0
    rows = [("BUILD", "STARTED", "STATUS", "STEPS", "HIT/MISS", "SECONDS", "IMAGE", "DOCKERFILE")]
    for doc in builds:
        totals = doc.get("totals") or {}
        started = doc.get("started")
        rows.append(
            (
                str(doc.get("id")),
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "",
                str(doc.get("status", "")),
                str(totals.get("steps", "")),
                f"{totals.get('hits', 0)}/{totals.get('misses', 0)}" if totals else "",
                f"{totals.get('seconds', 0):.2f}" if totals else "",
                str(doc.get("image_id") or "")[7:19],
                str(doc.get("dockerfile") or ""),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ocibuild.image.store import Store
    from ocibuild.observe.records import find_build, read_build

    root = options_from(args).root
    doc = read_build(find_build(root, args.build))
    if not args.html:
        print(json.dumps(doc, indent=2))
        return 0
    add_largest_files(Store(root), doc)
    write_html(doc, args.html)
    if args.html != "-":
        steps = len(doc.get("steps") or [])
        print(
            f"wrote {os.path.abspath(args.html)}: build {doc.get('id')}, "
            f"{doc.get('status')}, {steps} steps",
            file=sys.stderr,
        )
    return 0


def add_largest_files(store: Any, doc: dict[str, Any]) -> None:
    """A stored record has layer sizes but not the files (``--report`` adds those): read
    the largest files of each layer still in the store."""
    from ocibuild.observe.report import layer_changes

    for step in doc.get("steps") or []:
        layer = step.get("layer")
        if not layer or layer.get("largest_added") is not None or not layer.get("diff_id"):
            continue
        try:
            directory = store.layer_dir(layer["diff_id"])
        except OcibuildError:
            continue
        layer["largest_added"] = layer_changes(directory, [])["largest_added"]


def cmd_logs(args: argparse.Namespace) -> int:
    from ocibuild.observe.records import find_build, read_build, step_log_path

    build_dir = find_build(options_from(args).root, args.build)
    doc = read_build(build_dir)
    steps = {int(s["step"]): s for s in doc.get("steps") or []}
    numbers = sorted(
        {int(n.partition(".")[0]) for n in os.listdir(os.path.join(build_dir, "steps"))}
        | set(steps)
    )
    if args.step is not None:
        if args.step not in numbers:
            raise OcibuildError(
                f"build {doc.get('id')} has no step {args.step}",
                hint=f"its steps: {', '.join(map(str, numbers))}",
            )
        numbers = [args.step]
    out = sys.stdout.buffer
    for number in numbers:
        step = steps.get(number, {})
        if args.step is None:
            line = f"[{number}] {step.get('instruction', '')}".rstrip()
            out.write(line.encode() + b"\n")
        try:
            with open(step_log_path(build_dir, number), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        out.write(data)
        if args.step is None and data and not data.endswith(b"\n"):
            out.write(b"\n")
    out.flush()
    return 0


def cmd_debug(args: argparse.Namespace) -> int:
    from ocibuild.image.store import Store
    from ocibuild.observe import debug

    root = options_from(args).root
    kept, meta = debug.find_failure(root, args.build, args.step)
    if args.isolation is None and meta.get("isolation") in ("native-rootless",):
        args.isolation = meta["isolation"]
    require_root(args)
    command = list(args.cmd)
    if command[:1] == ["--"]:
        command = command[1:]
    print(
        f"debug: step {meta.get('step')} of build {meta.get('build')}: {meta.get('instruction')}"
        f"\ndebug: it ran: {' '.join(meta.get('command') or [])}",
        file=sys.stderr,
    )
    return debug.run_debug(Store(root), kept, meta, command)


def cmd_diff(args: argparse.Namespace) -> int:
    from ocibuild.image import diff
    from ocibuild.image.store import Store

    store = Store(options_from(args).root)
    if args.layers:
        if args.b:
            raise OcibuildError("--layers compares two layers of one image: give one image")
        n, m = args.layers
        a = diff.layer_entries(diff.layer_of(store, args.a, n))
        b = diff.layer_entries(diff.layer_of(store, args.a, m))
    else:
        if not args.b:
            raise OcibuildError("give two images", hint="ocibuild diff A B, or --layers N M A")
        a = diff.image_tree(store, args.a)
        b = diff.image_tree(store, args.b)
    changes = diff.compare(a, b)
    if args.format == "json":
        print(json.dumps([c.to_json() for c in changes], indent=2))
        return 0
    for change in changes:
        print(change.line())
    added = sum(c.new.size for c in changes if c.what == "added" and c.new is not None)
    print(f"{diff.summary(changes)} ({added} bytes in added files)")
    return 0
