"""The Python API the CLI is built on: ``ocibuild.build(...)`` and friends."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ocibuild.build.context import SourceTree
from ocibuild.build.executor import BuildResult, execute
from ocibuild.dockerfile.ignore import IgnoreMatcher, find_ignore_file, load_patterns
from ocibuild.dockerfile.instructions import Dockerfile
from ocibuild.dockerfile.parser import parse
from ocibuild.errors import OcibuildError
from ocibuild.image.layout import export_oci_layout
from ocibuild.image.store import Store, normalize_tag
from ocibuild.log import Reporter, SilentReporter
from ocibuild.options import Options
from ocibuild.plan import make_plan
from ocibuild.storage.overlay import ensure_mount_namespace


@dataclass(frozen=True)
class Output:
    """--output type=oci,dest=DIR"""

    type: str
    dest: str

    @classmethod
    def parse(cls, text: str) -> Output:
        fields: dict[str, str] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep:
                raise OcibuildError(
                    f"invalid --output {text!r}", hint="write it as type=oci,dest=DIR"
                )
            fields[key.strip()] = value.strip()
        kind = fields.get("type", "")
        if kind != "oci":
            raise OcibuildError(
                f"unsupported --output type {kind!r}", hint="supported: type=oci,dest=DIR"
            )
        if not fields.get("dest"):
            raise OcibuildError("--output needs dest=DIR", hint="e.g. type=oci,dest=out")
        return cls(kind, fields["dest"])


def ref_names(tags: Sequence[str]) -> list[str]:
    """OCI layout ref names: the tag part of each name (``hello:1`` -> ``1``)."""
    names = sorted({t.rsplit("/", 1)[-1].partition(":")[2] or "latest" for t in tags})
    return names or ["latest"]


def read_dockerfile(path: str, context: str) -> tuple[str, str]:
    """(text, display name); ``-`` reads standard input."""
    if path == "-":
        return sys.stdin.read(), "Dockerfile"
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read(), os.path.basename(path)
    except FileNotFoundError:
        raise OcibuildError(
            f"no Dockerfile at {path}", hint="give its path with -f, or put one in the context"
        ) from None


def load_context(context: str, dockerfile: str | None) -> SourceTree:
    if not os.path.isdir(context):
        raise OcibuildError(f"build context {context!r} is not a directory")
    ignore_file = find_ignore_file(context, dockerfile if dockerfile not in (None, "-") else None)
    matcher = None
    if ignore_file:
        with open(ignore_file, encoding="utf-8") as f:
            matcher = IgnoreMatcher(load_patterns(f.read()))
    return SourceTree(context, matcher)


def build(
    context: str = ".",
    *,
    dockerfile: str | None = None,
    dockerfile_text: str | None = None,
    tags: Sequence[str] = (),
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    output: Output | None = None,
    options: Options | None = None,
    reporter: Reporter | None = None,
) -> BuildResult:
    """Build an image; returns its ID (config digest), config and per-step records.

    ``dockerfile`` defaults to ``CONTEXT/Dockerfile``; ``dockerfile_text`` skips reading.
    Must run as root for now (rootless arrives with the isolation work). The calling
    process enters a private mount namespace (once) so no mount outlives it.
    """
    options = options or Options.resolve()
    reporter = reporter or SilentReporter()
    context = os.path.abspath(context)
    path = dockerfile or os.path.join(context, "Dockerfile")
    if dockerfile_text is None:
        text, name = read_dockerfile(path, context)
    else:
        text, name = dockerfile_text, os.path.basename(path)
    df: Dockerfile = parse(text, name)
    plan = make_plan(df, build_args or {}, target)
    tree = load_context(context, path if dockerfile_text is None else None)
    store = Store(options.root)
    ensure_mount_namespace()
    state, records, created = execute(
        plan,
        store=store,
        options=options,
        reporter=reporter,
        context=tree,
        build_args=build_args or {},
    )
    config = state.image.to_image_config(created)
    image_id = store.put_config(config)
    normalized = [normalize_tag(t) for t in tags]
    for tag in normalized:
        store.tag(tag, image_id)
    if output is not None:
        export_oci_layout(
            store,
            image_id,
            output.dest,
            ref_names=ref_names(normalized),
            compression=options.compression,
        )
    return BuildResult(image_id, config, normalized, records)
