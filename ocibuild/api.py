"""The Python API the CLI is built on: ``ocibuild.build(...)`` and friends."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ocibuild import _record, isolation
from ocibuild._record import dataclass
from ocibuild.builder.context import SourceTree
from ocibuild.builder.executor import BuildResult, StepRecord, execute
from ocibuild.builder.source import check_stage_platforms
from ocibuild.dockerfile.ignore import IgnoreMatcher, find_ignore_file, load_patterns
from ocibuild.dockerfile.instructions import Copy, Dockerfile, From, Instruction, Run
from ocibuild.dockerfile.parser import parse
from ocibuild.errors import DockerfileError, Interrupted, OcibuildError, closest
from ocibuild.image.model import ImageConfig
from ocibuild.image.store import Store, normalize_tag
from ocibuild.observe.log import Reporter, SilentReporter, StepBufferingReporter
from ocibuild.observe.records import BuildLog
from ocibuild.options import Options
from ocibuild.plan import Plan, make_plan, mount_from_refs
from ocibuild.platforms import check_runnable, host_platform, parse_platform, parse_platforms
from ocibuild.registry.base import push_name
from ocibuild.registry.reference import ReferenceError, parse_reference
from ocibuild.storage.overlay import ensure_mount_namespace

if TYPE_CHECKING:
    from concurrent.futures import Future

OUTPUT_TYPES = ("oci", "oci-archive", "docker-archive", "tar", "local", "registry")
_OUTPUT_HINT = "type=oci|oci-archive|docker-archive|tar|local,dest=PATH or type=registry,name=REF"


@dataclass(frozen=True)
class Output:
    """--output type=oci|oci-archive|docker-archive|tar|local,dest=PATH;
    type=registry[,name=REF] (pushes; default: the -t names)"""

    type: str
    dest: str = ""
    name: str = ""
    annotations: Mapping[str, str] = _record.field(default_factory=dict)  # manifest's

    @classmethod
    def parse(cls, text: str) -> Output:
        """Also buildx's short forms: ``-o PATH`` (type=local) and ``-o -`` (a tar of the
        root filesystem on standard output)."""
        if "=" not in text and text.strip():
            return cls("tar", "-") if text.strip() == "-" else cls("local", text.strip())
        fields: dict[str, str] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep:
                raise OcibuildError(
                    f"invalid --output {text!r}", hint="write it as type=oci,dest=DIR"
                )
            fields[key.strip()] = value.strip()
        kind = fields.get("type", "")
        if kind not in OUTPUT_TYPES:
            raise OcibuildError(f"unsupported --output type {kind!r}", hint=_OUTPUT_HINT)
        if kind == "registry":
            return cls(kind, "", fields.get("name", ""))
        if not fields.get("dest"):
            raise OcibuildError(f"--output type={kind} needs dest=PATH", hint=_OUTPUT_HINT)
        if fields["dest"] == "-" and kind == "local":
            raise OcibuildError(
                "--output type=local writes a directory, not a stream: dest=- is not possible",
                hint="give dest=DIR, or type=tar,dest=- for a tar on standard output",
            )
        return cls(kind, fields["dest"])


def check_tags(tags: Sequence[str]) -> list[str]:
    """Each ``-t`` name checked with Docker's reference grammar before anything runs;
    returns them as the store keeps them (``name:latest`` when untagged)."""
    names = []
    for tag in tags:
        try:
            ref = parse_reference(tag)
        except ReferenceError as exc:
            raise OcibuildError(
                f"-t {tag}: {exc.message}",
                hint="a name is lower-case [registry[:port]/]path[:tag], "
                "e.g. myapp:1.0 or 127.0.0.1:5000/team/app",
            ) from None
        if ref.digest:
            raise OcibuildError(
                f"-t {tag}: an image is named with a tag, not a digest",
                hint="give NAME[:TAG]",
            )
        names.append(normalize_tag(tag))
    return names


def parse_build_contexts(items: Sequence[str]) -> dict[str, str]:
    """``--build-context NAME=DIR|docker-image://REF|oci-layout://DIR[:TAG]`` -> {name:
    the reference FROM and COPY --from then use; a directory is imported by build}."""
    contexts: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or not name or not value:
            raise OcibuildError(
                f"invalid --build-context {item!r}",
                hint="write it as NAME=docker-image://REF or NAME=oci-layout://DIR",
            )
        if value.startswith("docker-image://"):
            ref = value[len("docker-image://") :]
            try:
                parse_reference(ref)
            except ReferenceError as exc:
                raise OcibuildError(f"--build-context {item}: {exc.message}") from None
            contexts[name] = ref
        elif value.startswith("oci-layout://"):
            contexts[name] = "oci-layout://" + os.path.abspath(value[len("oci-layout://") :])
        elif "://" in value:
            raise OcibuildError(
                f"--build-context {item}: unsupported kind of context",
                hint="give a directory, docker-image://REF or oci-layout://DIR",
            )
        elif not os.path.isdir(value):
            raise OcibuildError(
                f"--build-context {item}: {value} is not a directory",
                hint="give a directory, docker-image://REF or oci-layout://DIR",
            )
        else:
            contexts[name] = LOCAL_CONTEXT + os.path.abspath(value)
    return contexts


LOCAL_CONTEXT = "local-dir://"


def import_directory(store: Store, path: str) -> str:
    """A local directory as a one-layer image (``--build-context NAME=DIR``: then
    ``COPY --from=NAME`` copies from it); returns the image ID. Files are owned by root,
    as BuildKit sends a local context."""
    import hashlib
    import tarfile
    import tempfile

    from ocibuild.image.model import MT_OCI_LAYER, history_entry

    def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tempfile.TemporaryFile(dir=store.tmp) as tmp:
        with tarfile.open(fileobj=tmp, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for name in sorted(os.listdir(path)):
                tf.add(os.path.join(path, name), arcname=name, filter=owned_by_root)
        tmp.seek(0)
        digest = hashlib.sha256()
        while chunk := tmp.read(1 << 20):
            digest.update(chunk)
        tmp.seek(0)
        diff_id = store.import_layer_blob(tmp, MT_OCI_LAYER, "sha256:" + digest.hexdigest())
    created = "1970-01-01T00:00:00Z"
    image = ImageConfig(
        created=created,
        diff_ids=[diff_id],
        history=[history_entry(created, f"build context {path}")],
    )
    return store.put_image(image)


def apply_build_contexts(df: Dockerfile, contexts: Mapping[str, str]) -> Dockerfile:
    """``FROM NAME`` and ``COPY --from=NAME`` for a named context (not a stage) use the
    context's image instead, as BuildKit's named contexts do."""
    if not contexts:
        return df
    stages: set[str] = set()
    out: list[Instruction] = []
    for instr in df.instructions:
        if isinstance(instr, From):
            if instr.image.lower() in contexts and instr.image.lower() not in stages:
                instr = _record.replace(instr, image=contexts[instr.image.lower()])
            if instr.stage_name:
                stages.add(instr.stage_name)
        elif isinstance(instr, Copy):
            ref = (instr.from_ or "").lower()
            if ref in contexts and ref not in stages:
                flags = tuple(
                    _record.replace(f, value=contexts[ref]) if f.name == "from" else f
                    for f in instr.flags
                )
                instr = _record.replace(instr, flags=flags, from_=contexts[ref])
        out.append(instr)
    return _record.replace(df, instructions=tuple(out))


def _close(word: str, names: Sequence[str]) -> str | None:
    return closest(word.lower(), [n.lower() for n in names])


def check_target(df: Dockerfile, target: str | None) -> None:
    """``--target`` names a stage: else an error, with the nearest name, before any step."""
    if target is None:
        return
    froms = [i for i in df.instructions if isinstance(i, From)]
    names = [f.stage_name for f in froms if f.stage_name]
    if target.lower() in names or (target.isdigit() and int(target) < len(froms)):
        return
    close = _close(target, names)
    raise DockerfileError(
        f"target stage {target!r} could not be found",
        hint=f"did you mean --target {close}?"
        if close
        else f"stages with names: {', '.join(names) or 'none'}",
    )


def check_stage_refs(plan: Plan, store: Store) -> None:
    """A ``COPY --from`` / ``RUN --mount from=`` that is neither an earlier stage nor an
    image in the store, but is close to a stage's name, is a typo: said before any step
    runs (not after the stages before it have been built)."""
    for index in plan.order:
        stage = plan.stages[index]
        earlier = [s.name for s in plan.stages[:index] if s.name]
        for instr in stage.instructions:
            if isinstance(instr, Copy):
                refs = [instr.from_] if instr.from_ else []
            elif isinstance(instr, Run):
                refs = mount_from_refs(instr)
            else:
                continue
            refs = [ref for ref in refs if "$" not in ref]  # (words with variables: as built)
            for ref in refs:
                if plan.stage_ref(ref, index) is not None or any(c in ref for c in "/:@"):
                    continue
                close = _close(ref, earlier)
                if close is None or close == ref.lower():
                    continue
                try:
                    store.resolve(ref)
                    continue  # an image of that name: not a typo
                except OcibuildError:
                    pass
                raise DockerfileError(
                    f"--from={ref}: no stage named {ref!r} before this one",
                    pos=instr.pos,
                    source=instr.original,
                    instruction=instr.keyword,
                    hint=f"did you mean --from={close}?",
                )


def _failure_hint(exc: OcibuildError, options: Options, build_id: str) -> str:
    """The hint of a failed build: the runtime command line (its bundle and state are
    already deleted) gives way to how to keep them; then where the full output is."""
    lines = [
        line
        for line in (exc.hint or "").splitlines()
        if line.strip() and not line.startswith(("runtime command: ", "command: "))
    ]
    ran_something = exc.hint is not None and len(lines) != len(exc.hint.strip().splitlines())
    if ran_something and not options.keep_failed:
        lines.append(
            "rerun with --keep-failed to keep the step's filesystem and bundle, then "
            "`ocibuild debug last` opens a shell where it failed"
        )
    lines.append(f"the full output is kept: `ocibuild logs {build_id}`")
    return "\n".join(lines)


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


def check_context(context: str) -> None:
    """The context is an existing directory: said plainly, before anything else."""
    if not os.path.exists(context):
        raise OcibuildError(
            f"build context {context}: directory does not exist",
            hint="give the directory that holds the Dockerfile and the files it copies",
        )
    if not os.path.isdir(context):
        raise OcibuildError(
            f"build context {context} is a file, not a directory",
            hint="give the directory (the Dockerfile goes with -f FILE)",
        )


def default_dockerfile(context: str) -> str:
    """CONTEXT/Dockerfile, else CONTEXT/Containerfile when only that one exists."""
    path = os.path.join(context, "Dockerfile")
    other = os.path.join(context, "Containerfile")
    if not os.path.exists(path) and os.path.exists(other):
        return other
    return path


def load_context(context: str, dockerfile: str | None) -> SourceTree:
    check_context(context)
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
    push: bool = False,
    labels: Mapping[str, str] | None = None,
    platform: str | None = None,
    build_contexts: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> BuildResult:
    """Build an image; returns its ID (config digest), config and per-step records.

    ``dockerfile`` defaults to ``CONTEXT/Dockerfile`` (or ``CONTEXT/Containerfile``);
    ``dockerfile_text`` skips reading. ``labels`` are set on the image last (like
    ``--label``, they win over LABEL instructions). ``platform``: the target platform
    (OS/ARCH[/VARIANT]; this machine's by default; another runs through its binfmt_misc
    emulator). ``build_contexts``: {name: image reference or
    ``oci-layout://DIR``} that ``FROM name`` and ``COPY --from=name`` use (see
    :func:`parse_build_contexts`). ``cancel``: set it (from another thread) to stop the
    build: its running RUN is killed and no next step starts (it raises
    :class:`ocibuild.errors.Interrupted`). Every build, failed or not (a parse error
    too), is recorded in ``ROOT/builds/ID/build.json`` (and ``options.report``).
    Runs as root, or inside a user namespace (the CLI enters one for ordinary users; see
    ``ocibuild.isolation``); ``options.isolation`` and ``options.storage_driver`` are
    resolved (and their requirements checked) before the first step. The calling
    process enters a private mount namespace (once) so no mount outlives it.
    """
    normalized = check_tags(tags)
    options = options or Options.resolve()
    reporter = reporter or SilentReporter()
    context = os.path.abspath(context)
    check_context(context)
    path = dockerfile or default_dockerfile(context)
    if dockerfile_text is None:
        text, name = read_dockerfile(path, context)
    else:
        text, name = dockerfile_text, os.path.basename(path)
    target_platform = parse_platform(platform) if platform else host_platform()
    check_runnable(target_platform)  # no emulator: refused before the first step
    store = Store(options.root)
    log = BuildLog(store, dockerfile=path, context=context, options=options)  # ROOT/builds/ID
    log.build_args = dict(build_args or {})
    log.target = target
    log.platform = str(target_platform)
    try:  # mistakes found before the first step are recorded too
        contexts = {
            key: import_directory(store, ref.removeprefix(LOCAL_CONTEXT))
            if ref.startswith(LOCAL_CONTEXT)
            else ref
            for key, ref in (build_contexts or {}).items()
        }
        df: Dockerfile = apply_build_contexts(parse(text, name), contexts)
        check_target(df, target)
        plan = make_plan(df, build_args or {}, target, target_platform)
        tree = load_context(context, path if dockerfile_text is None else None)
        check_stage_refs(plan, store)
        check_stage_platforms(plan)  # FROM --platform: runnable here (before any step)
        ensure_mount_namespace()
        options = isolation.resolve(options, reporter, store.tmp)
    except BaseException as exc:
        with contextlib.suppress(Exception):  # never hide the build's own error
            log.finish(records=[], image_id=None, tags=[], error=exc)
        raise
    log.options = options
    reporter = log.reporter(reporter)
    # held until the image is tagged and exported: `prune --all` leaves its layers be
    with store.in_use():
        records: list[StepRecord] = []
        try:
            state, records, created = execute(
                plan,
                store=store,
                options=options,
                reporter=reporter,
                context=tree,
                build_args=build_args or {},
                observer=log.observer,
                cancel=cancel,
            )
            image = state.image
            image.created = created
            if platform:  # BuildKit: an explicit target platform names the image's
                _set_platform(image, target_platform.descriptor())
            if labels:
                image.config["Labels"] = {**(image.config.get("Labels") or {}), **labels}
            config = image.to_json()
            image_id = store.put_image(image)
            for tag in normalized:
                store.tag(tag, image_id)
            if output is not None:
                write_output(store, image_id, output, normalized, options, reporter)
            if push:
                write_output(store, image_id, Output("registry"), normalized, options, reporter)
        except BaseException as exc:
            with contextlib.suppress(Exception):  # never hide the build's own error
                log.finish(records=records, image_id=None, tags=[], error=exc)
            if isinstance(exc, OcibuildError):
                exc.hint = _failure_hint(exc, options, log.id)
            raise
    log.finish(records=records, image_id=image_id, tags=normalized)
    return BuildResult(image_id, config, normalized, records, build_id=log.id)


def _set_platform(image: ImageConfig, platform: Mapping[str, str]) -> None:
    """The image's architecture, os and variant as ``platform`` says."""
    image.architecture = platform["architecture"]
    image.os = platform["os"]
    image.variant = platform.get("variant") or ""


def write_output(
    store: Store,
    image_id: str,
    output: Output,
    tags: Sequence[str],
    options: Options,
    reporter: Reporter,
) -> None:
    """Export or push a built image as ``output`` says."""
    # Loaded here, not at import: they pull in tar and the compressors.
    from ocibuild.image.archive import (
        export_docker_archive,
        export_oci_archive,
        export_rootfs_dir,
        export_rootfs_tar,
    )
    from ocibuild.image.layout import export_oci_layout

    if output.annotations and output.type not in ("oci", "oci-archive"):
        raise OcibuildError(
            f"--annotation: a type={output.type} output has no OCI manifest to annotate",
            hint="annotations go with --output type=oci or type=oci-archive for now",
        )
    if output.dest == "-":
        _write_to_stdout(store, image_id, output, tags, options, reporter)
    elif output.type == "oci":
        digest = export_oci_layout(
            store, image_id, output.dest, ref_names=ref_names(tags), compression=options.compression
        )
        if output.annotations:
            annotate_manifest(output.dest, digest, output.annotations)
    elif output.type == "oci-archive" and output.annotations:
        from ocibuild.image.archive import _tar_dir

        work = store.tmpdir("annotated-")
        try:
            layout = os.path.join(work, "layout")
            digest = export_oci_layout(
                store, image_id, layout, ref_names=ref_names(tags), compression=options.compression
            )
            annotate_manifest(layout, digest, output.annotations)
            _tar_dir(layout, output.dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    elif output.type == "oci-archive":
        export_oci_archive(
            store, image_id, output.dest, ref_names=ref_names(tags), compression=options.compression
        )
    elif output.type == "docker-archive":
        export_docker_archive(store, image_id, output.dest, repo_tags=tags)
    elif output.type == "tar":
        export_rootfs_tar(store, image_id, output.dest)
    elif output.type == "local":
        export_rootfs_dir(store, image_id, output.dest)
    elif output.type == "registry":
        names = [output.name] if output.name else list(tags)
        if not names:
            raise OcibuildError(
                "nothing to push to: the image has no name",
                hint="give -t NAME (a registry reference), or --output type=registry,name=REF",
            )
        for name in names:
            push_name(
                store,
                image_id,
                name,
                compression=options.compression,
                tls_verify=options.tls_verify,
                reporter=reporter,
            )
    else:
        raise OcibuildError(f"unsupported --output type {output.type!r}", hint=_OUTPUT_HINT)


def parse_annotations(items: Sequence[str]) -> dict[str, str]:
    """``--annotation [manifest:]KEY=VALUE`` (buildx's form; the manifest is annotated)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        where, colon, name = key.rpartition(":")
        if colon and where != "manifest":
            raise OcibuildError(
                f"--annotation {item}: only manifest annotations are supported for now",
                hint="write KEY=VALUE or manifest:KEY=VALUE",
            )
        if not sep or not name:
            raise OcibuildError(f"invalid --annotation {item!r}", hint="write KEY=VALUE")
        out[name] = value
    return out


def annotate_manifest(layout: str, digest: str, annotations: Mapping[str, str]) -> str:
    """Add ``annotations`` to the manifest ``digest`` of the OCI layout; its index entries
    then point at the new manifest. Returns the new manifest digest."""
    import hashlib
    import json

    from ocibuild.fs.atomic import write_atomic
    from ocibuild.image.model import canonical_json

    blobs = os.path.join(layout, "blobs", "sha256")
    old = os.path.join(blobs, digest.partition(":")[2])
    with open(old, "rb") as f:
        manifest = json.load(f)
    manifest["annotations"] = {**(manifest.get("annotations") or {}), **annotations}
    data = canonical_json(manifest)
    new_digest = "sha256:" + hashlib.sha256(data).hexdigest()
    write_atomic(os.path.join(blobs, new_digest.partition(":")[2]), data)
    index_path = os.path.join(layout, "index.json")
    with open(index_path, "rb") as f:
        index = json.load(f)
    for entry in index.get("manifests") or []:
        if entry.get("digest") == digest:
            entry["digest"], entry["size"] = new_digest, len(data)
    write_atomic(index_path, canonical_json(index))
    if not any(m.get("digest") == digest for m in index.get("manifests") or []):
        os.unlink(old)
    return new_digest


def _write_to_stdout(
    store: Store,
    image_id: str,
    output: Output,
    tags: Sequence[str],
    options: Options,
    reporter: Reporter,
) -> None:
    """``dest=-``: the archive is written in the store's scratch space, then streamed to
    standard output (type=oci becomes an OCI archive: a directory cannot be streamed)."""
    import shutil
    import tempfile

    kind = "oci-archive" if output.type == "oci" else output.type
    work = tempfile.mkdtemp(prefix="stdout-", dir=store.tmp)
    try:
        tar = os.path.join(work, "image.tar")
        write_output(
            store,
            image_id,
            Output(kind, tar, annotations=output.annotations),
            tags,
            options,
            reporter,
        )
        with open(tar, "rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
        sys.stdout.buffer.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- multi-platform builds ---------------------------------------------------------------


def platform_jobs(jobs: int | None, platforms: Sequence[str]) -> int:
    """How many platform builds run at once: ``jobs`` (``--platform-jobs``), else one per
    platform but at most one per CPU (an emulated RUN keeps a core busy)."""
    if jobs is not None and jobs < 1:
        raise OcibuildError(
            f"--platform-jobs {jobs}: must be at least 1", hint="1 builds one platform at a time"
        )
    return max(1, min(len(platforms), jobs or os.cpu_count() or 1))


def build_platforms(
    context: str = ".",
    *,
    platforms: Sequence[str],
    jobs: int | None = None,
    tags: Sequence[str] = (),
    output: Output | None = None,
    push: bool = False,
    options: Options | None = None,
    reporter: Reporter | None = None,
    **kwargs: Any,
) -> BuildResult:
    """Build for each of ``platforms`` (``OS/ARCH[/VARIANT]`` each; :func:`build` with
    ``kwargs`` per platform), ``jobs`` at once (see :func:`platform_jobs`; threads: a
    build's time is spent in the runtime, the emulator and the compressors, outside the
    interpreter lock), then one OCI image index over them: exported (``output``
    type=oci / oci-archive) and pushed (type=registry, ``push``) as one multi-platform
    image. Once every platform is built, ``tags`` name this machine's platform's image in
    the store (or the first platform's when it is not among them) and the store records
    the index under them. Returns that build's result. A platform that cannot run here
    is refused before any build starts; when a build fails, the others are stopped (see
    :func:`_run_platforms`), that failure is raised (its platform named) once every
    started build has ended, and nothing is tagged. ``options.trace`` and
    ``options.report`` name one file per platform (:func:`platform_file`)."""
    wanted = [str(p) for p in parse_platforms(list(platforms))]
    for plat in wanted:
        check_runnable(parse_platform(plat))
    normalized = check_tags(tags)
    options = options or Options.resolve()
    reporter = reporter or SilentReporter()
    jobs = platform_jobs(jobs, wanted)
    host = str(host_platform())
    keep = host if host in wanted else wanted[0]
    store = Store(options.root)

    cancel = threading.Event()  # a failed platform stops the others

    def one(plat: str, rep: Reporter) -> BuildResult:
        mine = _record.replace(  # --trace, --report: a file per platform
            options,
            trace=platform_file(options.trace, plat),
            report=platform_file(options.report, plat),
        )
        return build(
            context, tags=(), options=mine, reporter=rep, platform=plat, cancel=cancel,
            **kwargs,
        )  # fmt: skip

    with store.in_use():  # the untagged platforms' images until the index is recorded
        results = _run_platforms(one, wanted, reporter, jobs, cancel)
        images = [(r.image_id, parse_platform(p).descriptor()) for p, r in results]
        kept = next(r for p, r in results if p == keep)
        for name in normalized:
            store.tag(name, kept.image_id)
        if normalized:
            store.put_index(images, normalized)
        kept = _record.replace(kept, tags=normalized)
        if output is not None:
            write_index_output(images, output, normalized, options, reporter)
        if push:
            write_index_output(images, Output("registry"), normalized, options, reporter)
    reporter.info("platforms: " + ", ".join(f"{p} {r.image_id[:19]}" for p, r in results))
    return kept


def platform_file(path: str | None, platform: str) -> str | None:
    """A multi-platform build's ``--trace``/``--report`` FILE for one platform: the
    platform inserted before the extension (trace.json, linux/arm64 ->
    trace-linux-arm64.json; linux/arm/v7 -> trace-linux-arm-v7.json)."""
    if not path:
        return path
    directory, name = os.path.split(path)
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:  # no extension (or a dot file): the platform goes last
        stem, ext = name, ""
    tag = platform.replace("/", "-")
    return os.path.join(directory, f"{stem}-{tag}" + (f".{ext}" if ext else ""))


def _run_platforms(
    one: Callable[[str, Reporter], BuildResult],
    platforms: Sequence[str],
    reporter: Reporter,
    jobs: int,
    cancel: threading.Event,
) -> list[tuple[str, BuildResult]]:
    """``one(platform, reporter)`` for each platform, ``jobs`` at a time; (platform,
    result) in platform order. The first failure sets ``cancel``: the builds still
    running stop (their running RUN killed, no next step), those not started never
    start, and that failure is raised, its platform named, once they have all ended."""
    if jobs <= 1:
        results = []
        for plat in platforms:
            reporter.info(f"=== platform {plat} ===")
            try:
                results.append((plat, one(plat, reporter)))
            except OcibuildError as exc:
                exc.message += f" (building for {plat})"
                raise
        return results
    ensure_mount_namespace()  # in this (main) thread, before any build thread exists
    lock = threading.Lock()
    reporter.info(f"=== platforms {', '.join(platforms)} ({jobs} at a time) ===")

    failed: list[str] = []  # the platforms whose own build failed, in failing order

    def run(plat: str) -> BuildResult:
        if cancel.is_set():
            raise Interrupted(signal.SIGINT)  # another platform failed before this began
        mine = StepBufferingReporter(reporter, lock, f"[{plat}] ")
        try:
            return one(plat, mine)
        except BaseException:
            with lock:
                if not cancel.is_set():
                    failed.append(plat)
                    cancel.set()
            raise
        finally:
            mine.flush()  # what a failed step held back explains the failure

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(jobs, thread_name_prefix="platform") as pool:
        futures = [(plat, pool.submit(run, plat)) for plat in platforms]
        try:
            for _, future in futures:
                _wait(future)
        except BaseException:
            cancel.set()  # Ctrl-C, SIGTERM: every platform's build stops (before the wait)
            raise
    if failed:
        stopped = [p for p, f in futures if p not in failed and f.exception() is not None]
        failure = dict(futures)[failed[0]].exception()
        assert failure is not None
        if stopped:
            reporter.info(
                f"{failed[0]} failed: stopped the build for {', '.join(stopped)} before it ended"
            )
        if isinstance(failure, OcibuildError):
            failure.message += f" (building for {failed[0]})"
        raise failure
    return [(plat, future.result()) for plat, future in futures]


def _wait(future: Future[BuildResult]) -> None:
    """Wait for ``future`` in short slices, so a signal reaches this (main) thread."""
    while not future.done():
        with contextlib.suppress(TimeoutError):
            future.exception(timeout=0.5)


def write_index_output(
    images: list[tuple[str, dict[str, str]]],
    output: Output,
    tags: Sequence[str],
    options: Options,
    reporter: Reporter,
) -> str:
    """Export or push the image index over ``images``; returns the index's digest."""
    from ocibuild.image.layout import export_oci_index

    store = Store(options.root)
    with store.in_use():
        if output.type == "registry":
            from ocibuild.registry.base import push_index

            names = [output.name] if output.name else list(tags)
            if not names:
                raise OcibuildError(
                    "nothing to push to: the image has no name",
                    hint="give -t NAME (a registry reference), or --output type=registry,name=REF",
                )
            digest = ""
            for name in names:
                digest = push_index(
                    store,
                    images,
                    name,
                    compression=options.compression,
                    tls_verify=options.tls_verify,
                    reporter=reporter,
                )
            return digest
        if output.dest == "-":  # an OCI archive, made in the scratch space, then streamed
            work = store.tmpdir("index-stdout-")
            try:
                tar = os.path.join(work, "image.tar")
                digest = write_index_output(
                    images, Output("oci-archive", tar), tags, options, reporter
                )
                with open(tar, "rb") as f:
                    shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
                sys.stdout.buffer.flush()
                return digest
            finally:
                shutil.rmtree(work, ignore_errors=True)
        if output.type == "oci":
            return export_oci_index(
                store, images, output.dest, ref_names=ref_names(tags),
                compression=options.compression,
            )  # fmt: skip
        from ocibuild.image.archive import _tar_dir

        work = store.tmpdir("index-")
        try:
            layout = os.path.join(work, "layout")
            digest = export_oci_index(
                store, images, layout, ref_names=ref_names(tags), compression=options.compression
            )
            _tar_dir(layout, output.dest)
            return digest
        finally:
            shutil.rmtree(work, ignore_errors=True)
