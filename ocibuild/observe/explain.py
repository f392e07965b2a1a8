"""Why a step hit or missed the cache, and what its key is made of.

Every build records, per step, the inputs of its cache key (what
:meth:`StepCache.material` hashes) plus what explains them: the parent's layers and
config, and for COPY/ADD from the context a listing of the sources (path -> type,
permission bits, size, content digest). A record is filed under a stable step identity:
the Dockerfile (absolute path), the stage index and the instruction's index in the stage
(ONBUILD triggers first); the instruction text is kept in it too. Records live in
``ROOT/cache/explain/<identity>/<index>.json`` and are rewritten, without fsync, after
each step (a lost one only turns an explanation into "no earlier build").

The listing is not in the record: it is a side file, ``<index>.files`` (NUL-separated
fields, five per entry, in the walk's order), named with its sha256 in the record. It is
written as the sources are walked and read only to explain a miss whose sources changed
(two listings in the walk's order are compared as they are read) or for ``--explain``:
a COPY of 200,000 files no longer parses, holds and writes tens of MB of JSON per build.

On a miss the current inputs are compared with the record of the last build of that step
(same index and text; else a record of this stage with the same text, for inserted
lines; else the same index, whose text then changed), and the first input that differs
is named::

    MISS: no earlier build
    MISS: instruction changed (was: RUN make)
    MISS: parent layer changed (step 3)
    MISS: ARG VERSION changed
    MISS: COPY source app/x.py changed (mode 0664 -> 0644)

A step whose parent changed names the first earlier step of the stage, in this build,
whose result differs from its recorded result (or the base image).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ocibuild._record import dataclass, field
from ocibuild.builder.cache import image_digest
from ocibuild.builder.hashing import HashCounters
from ocibuild.dockerfile.instructions import Copy, Instruction
from ocibuild.errors import OcibuildError
from ocibuild.fs.atomic import TMP_PREFIX, atomic_file, mkstemp, unlink_quiet, write_atomic
from ocibuild.plan import Stage

if TYPE_CHECKING:
    from ocibuild.builder.cache import StepCache
    from ocibuild.builder.step import StepContext

RECORD_VERSION = 2  # 2: the source listing in a side file (a version-1 record is ignored)
LISTING_SUFFIX = ".files"
_LISTING_FIELDS = 5  # path, type, permission bits, size, content: each ends with a NUL
_LISTING_BATCH = 4096  # entries encoded, hashed and written at a time
_KINDS = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "symlink",
    stat.S_IFCHR: "chardev",
    stat.S_IFBLK: "blockdev",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


@dataclass
class Decision:
    """The cache decision of one step, as shown and reported."""

    status: str  # hit, miss, off (--no-cache), none (no key)
    reason: str = ""  # why it missed ("" for a hit)
    key: str | None = None
    inputs: dict[str, Any] | None = None

    def line(self) -> str:
        if self.status == "hit":
            return "HIT"
        return f"MISS: {self.reason}" if self.reason else "MISS"


@dataclass
class _Step:
    number: int
    index: int
    text: str
    keyword: str
    stage_dir: str
    decision: Decision | None = None
    previous: dict[str, Any] | None = None
    listing: Listing | None = None  # this build's source listing (a temporary file)


@dataclass
class _Stage:
    changed: list[int] = field(default_factory=list)  # steps whose result differs


def dockerfile_identity(dockerfile: str | None, context: str) -> str:
    """The stable name of a Dockerfile for step identities."""
    if dockerfile in (None, "-"):
        return "stdin:" + os.path.abspath(context)
    return os.path.abspath(str(dockerfile))


class Explainer:
    """The cache observer of one build (``StepCache.observer``)."""

    def __init__(self, store_root: str, dockerfile: str, *, explain: bool = False) -> None:
        self.dir = os.path.join(store_root, "cache", "explain")
        self.dockerfile = dockerfile
        self.explain = explain
        self._lock = threading.Lock()
        self._current: dict[int, _Step] = {}  # by stage index (one thread per stage)
        self._stages: dict[int, _Stage] = {}
        self.decisions: dict[int, Decision] = {}  # by step number

    # -- step life cycle (called by the executor) ---------------------------------------------
    def begin(
        self, ctx: StepContext, stage: Stage, number: int, index: int, instr: Instruction
    ) -> None:
        ident = f"{self.dockerfile}\0{stage.index}"
        name = hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        step = _Step(
            number, index, instr.original.strip(), instr.keyword, os.path.join(self.dir, name)
        )
        with self._lock:
            self._current[ctx.stage_index] = step
            self._stages.setdefault(ctx.stage_index, _Stage())

    def decided(
        self,
        ctx: StepContext,
        stage: Stage,
        instr: Instruction,
        material: dict[str, Any] | None,
        key: str | None,
        status: str,
    ) -> None:
        step = self._current.get(ctx.stage_index)
        if step is None:
            return
        previous = self._load(step)
        step.previous = _header(previous)  # what finished() compares
        decision = Decision(status, key=key)
        same_key = previous is not None and previous.get("key") == key
        shown: Listing | None = None  # the listing --explain shows
        if material is not None and not (status == "hit" and same_key):
            decision.inputs = explain_inputs(ctx, instr, material)
            step.listing = shown = new_listing(ctx, instr, step.stage_dir, step.index)
        elif material is not None and previous is not None:
            decision.inputs = previous.get("inputs")
            # recorded again with the step when its record is rewritten (a new result)
            step.listing = shown = _recorded_listing(step.stage_dir, previous)
        if status == "off":
            decision.reason = "cache disabled (--no-cache or --no-cache-filter)"
        elif status == "none":
            decision.reason = "no cache key (the step's inputs could not be read)"
        elif status == "miss":
            decision.reason = self._why(ctx, stage, step, previous, decision)
        step.decision = decision
        with self._lock:
            self.decisions[step.number] = decision
        if status != "hit":
            ctx.reporter.note(decision.line())
        if self.explain and decision.inputs is not None:
            files = shown.load() if shown is not None else None
            ctx.reporter.note(format_inputs(key, decision.inputs, files))

    def finished(self, ctx: StepContext, *, failed: bool = False) -> None:
        """The step ended: record its inputs and result for the next build."""
        step = self._current.pop(ctx.stage_index, None)
        if step is None:
            return
        try:
            self._finish(ctx, step, failed)
        finally:
            if step.listing is not None:
                step.listing.discard()  # a temporary one: kept only when renamed into place

    def _finish(self, ctx: StepContext, step: _Step, failed: bool) -> None:
        if step.decision is None:
            return
        result = None if failed else image_digest(ctx.image)
        previous = step.previous
        if previous is None or previous.get("result") != result:
            self._stages[ctx.stage_index].changed.append(step.number)
        decision = step.decision
        if decision.key is None:
            return
        if (
            previous is not None
            and previous.get("key") == decision.key
            and previous.get("result") == result
            and previous.get("index") == step.index
        ):
            return  # nothing new to record
        record = {
            "version": RECORD_VERSION,
            "dockerfile": self.dockerfile,
            "index": step.index,
            "text": step.text,
            "key": decision.key,
            "result": result,
            "inputs": decision.inputs,
        }
        side = os.path.join(step.stage_dir, f"{step.index}{LISTING_SUFFIX}")
        meta = step.listing.keep(side) if step.listing is not None else None
        if meta is not None:
            record["source_listing"] = meta
        else:
            with contextlib.suppress(OSError):
                os.unlink(side)  # a listing of an earlier instruction at this index
        _write_json(step.stage_dir, f"{step.index}.json", record)
        if not self.explain:
            decision.inputs = None  # recorded; nothing reads it again (report: status, reason)

    # -- records ---------------------------------------------------------------------------------
    def _load(self, step: _Step) -> dict[str, Any] | None:
        same = _read_json(os.path.join(step.stage_dir, f"{step.index}.json"))
        if same is not None and same.get("text") == step.text:
            return same
        with contextlib.suppress(OSError):
            for name in sorted(os.listdir(step.stage_dir)):
                other = _read_json(os.path.join(step.stage_dir, name))
                if other is not None and other.get("text") == step.text:
                    return other
        return same

    # -- the explanation ---------------------------------------------------------------------
    def _why(
        self,
        ctx: StepContext,
        stage: Stage,
        step: _Step,
        previous: dict[str, Any] | None,
        decision: Decision,
    ) -> str:
        if previous is None:
            return "no earlier build"
        if previous.get("key") == decision.key:
            if previous.get("result") is None:  # recorded by a failed attempt
                return "the last build of this step failed (no result to reuse)"
            return "the cached result is gone (its layers were removed from the store)"
        old = previous.get("inputs") or {}
        new = decision.inputs or {}
        if old.get("instruction") != new.get("instruction"):
            return f"instruction changed (was: {_clip(str(previous.get('text', '')))})"
        if old.get("parent") != new.get("parent"):
            return self._parent_reason(ctx, stage, old, new)
        if old.get("flags") != new.get("flags"):
            return "stage flags changed (CMD given before ENTRYPOINT)"
        for group in ("build_args", "global_args", "args"):
            name = _first_changed_key(old.get(group) or {}, new.get(group) or {})
            if name is not None:
                return f"ARG {name} changed"
        if old.get("epoch") != new.get("epoch"):
            return f"SOURCE_DATE_EPOCH {_epoch_change(old.get('epoch'), new.get('epoch'))}"
        if old.get("sources") != new.get("sources"):
            before = _recorded_listing(step.stage_dir, previous)
            return f"{step.keyword} " + _sources_reason(before, step.listing)
        if old.get("mounts") != new.get("mounts"):
            return "RUN --mount source changed"
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                return f"{name} changed"
        return "cache key changed"

    def _parent_reason(
        self, ctx: StepContext, stage: Stage, old: dict[str, Any], new: dict[str, Any]
    ) -> str:
        if old.get("parent_layers") != new.get("parent_layers"):
            what = "parent layer changed"
        else:
            keys = _changed_config_keys(
                old.get("parent_config") or {}, new.get("parent_config") or {}
            )
            what = f"parent config changed ({', '.join(keys)})" if keys else "parent changed"
        changed = self._stages.get(ctx.stage_index, _Stage()).changed
        if changed:
            return f"{what} (step {changed[0]})"
        return f"{what} (base image {stage.base})"


# -- inputs ---------------------------------------------------------------------------------------
def explain_inputs(
    ctx: StepContext, instr: Instruction, material: dict[str, Any]
) -> dict[str, Any]:
    """The key's material plus what explains it (not part of the key; the source
    listing of a COPY is apart: :func:`new_listing`)."""
    inputs = dict(material)
    inputs["parent_layers"] = list(ctx.image.diff_ids)
    inputs["parent_config"] = ctx.image.config
    return dict(json.loads(json.dumps(inputs)))  # as a record reads back (tuples: lists)


Fields = tuple[str, str, str, str]  # type, permission bits (octal), size, content


class Listing:
    """A source listing in a file: ``path\0type\0mode\0size\0content\0`` per entry,
    in the order the sources were walked, with the sha256 of the whole file."""

    def __init__(self, path: str, sha256: str, entries: int, temporary: bool) -> None:
        self.path = path
        self.sha256 = sha256
        self.entries = entries
        self.temporary = temporary

    def read(self) -> Iterator[tuple[str, Fields]]:
        """(path, fields) per entry; :class:`BadListing` when the file is not the one
        recorded (missing, changed since, or cut short)."""
        h = hashlib.sha256()
        rest = b""
        try:
            with open(self.path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    parts = (rest + chunk).split(b"\0")
                    rest = parts.pop()
                    whole = len(parts) - len(parts) % _LISTING_FIELDS
                    for i in range(0, whole, _LISTING_FIELDS):
                        path, kind, mode, size, content = (
                            p.decode("utf-8", "surrogateescape") for p in parts[i : i + 5]
                        )
                        yield path, (kind, mode, size, content)
                    rest = b"\0".join([*parts[whole:], rest])
        except OSError as exc:
            raise BadListing(str(exc)) from None
        if rest or h.hexdigest() != self.sha256:
            raise BadListing(self.path)

    def load(self) -> dict[str, Fields] | None:
        """The listing as a dict (for ``--explain``), None when it cannot be read."""
        try:
            return dict(self.read())
        except BadListing:
            return None

    def keep(self, path: str) -> dict[str, Any] | None:
        """The listing as the file ``path`` (a temporary one is renamed, a recorded one
        copied unless it is that file already): what the record says of it, None when
        it could not be copied."""
        if self.temporary:
            os.replace(self.path, path)
            self.path, self.temporary = path, False
        elif os.path.abspath(self.path) != os.path.abspath(path):
            try:
                with (
                    open(self.path, "rb") as src,
                    atomic_file(path, mode=0o600, durable=False) as dst,
                ):
                    shutil.copyfileobj(src, dst, 1 << 20)
            except OSError:
                return None
        return {"file": os.path.basename(path), "sha256": self.sha256, "entries": self.entries}

    def discard(self) -> None:
        if self.temporary:
            unlink_quiet(self.path)
            self.temporary = False


class BadListing(Exception):
    """A recorded listing that cannot be read back as it was written."""


def new_listing(ctx: StepContext, instr: Instruction, directory: str, index: int) -> Listing | None:
    """This step's source listing (a COPY from the context), written as the sources are
    walked to a temporary file in ``directory``; None for other steps, or when the
    sources cannot be read (the step reports that itself)."""
    if not isinstance(instr, Copy) or instr.from_ is not None or ctx.cache is None:
        return None
    try:
        return write_listing(directory, index, source_listing(ctx, instr, ctx.cache))
    except (OcibuildError, OSError):
        return None


def write_listing(directory: str, index: int, records: Iterable[tuple[str, Fields]]) -> Listing:
    """A temporary listing file in ``directory`` holding ``records``, written as they
    come (removed again when they raise)."""
    os.makedirs(directory, exist_ok=True)
    fd, tmp = mkstemp(directory, f"{TMP_PREFIX}{index}{LISTING_SUFFIX}-")
    h = hashlib.sha256()
    entries = 0
    try:
        with os.fdopen(fd, "wb") as f:
            batch: list[str] = []
            for path, fields in records:
                batch.append(_listing_text(path, fields))
                if len(batch) >= _LISTING_BATCH:
                    entries += _write_batch(f, h, batch)
            entries += _write_batch(f, h, batch)
    except BaseException:
        unlink_quiet(tmp)
        raise
    return Listing(tmp, h.hexdigest(), entries, temporary=True)


def _listing_text(path: str, fields: Fields) -> str:
    kind, mode, size, content = fields
    return f"{path}\0{kind}\0{mode}\0{size}\0{content}\0"


def _write_batch(f: Any, h: Any, batch: list[str]) -> int:
    data = "".join(batch).encode("utf-8", "surrogateescape")
    h.update(data)
    f.write(data)
    n = len(batch)
    batch.clear()
    return n


def _recorded_listing(directory: str, record: dict[str, Any] | None) -> Listing | None:
    """The listing a record names (a file next to it), None when it has none."""
    meta = (record or {}).get("source_listing")
    if not isinstance(meta, dict):
        return None
    name, digest, entries = meta.get("file"), meta.get("sha256"), meta.get("entries")
    if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
        return None
    if not isinstance(digest, str) or not isinstance(entries, int):
        return None
    return Listing(os.path.join(directory, name), digest, entries, temporary=False)


def source_listing(ctx: StepContext, instr: Copy, cache: StepCache) -> Iterator[tuple[str, Fields]]:
    """(path in the context, (type, permission bits (octal), size, content)) per source
    entry, in the walk's order: what the sources' digest covers, file by file (digests
    come from the stat cache). A path may come twice when two sources overlap."""
    counters = HashCounters()
    for pattern in (ctx.expand(instr, s) for s in instr.sources):
        for src in ctx.context.match(pattern):
            st = os.stat(src.host_path)
            if stat.S_ISDIR(st.st_mode):
                yield src.rel or ".", _entry(st, "")
                for host, rel, entry_st in ctx.context.iter_walk(src):
                    path = src.rel + "/" + rel if src.rel else rel
                    yield path, _entry(entry_st, _content(cache, path, host, entry_st, counters))
            else:
                yield src.rel, _entry(st, _content(cache, src.rel, src.host_path, st, counters))


def _entry(st: os.stat_result, content: str) -> Fields:
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "other")
    size = str(st.st_size) if stat.S_ISREG(st.st_mode) else "0"
    return kind, _mode_text(stat.S_IMODE(st.st_mode)), size, content


_MODES: dict[int, str] = {}


def _mode_text(mode: int) -> str:
    """``0644``: one string object per distinct mode, shared by every file that has it."""
    text = _MODES.get(mode)
    if text is None:
        text = _MODES.setdefault(mode, f"{mode:04o}")
    return text


def _header(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A record without its inputs."""
    if record is None:
        return None
    return {k: v for k, v in record.items() if k != "inputs"}


def _content(
    cache: StepCache, rel: str, host: str, st: os.stat_result, counters: HashCounters
) -> str:
    if stat.S_ISREG(st.st_mode):
        return "sha256:" + cache.stat_cache.digest(rel, host, st, counters, True)
    if stat.S_ISLNK(st.st_mode):
        return "link:" + os.readlink(host)
    return ""


def _sources_reason(before: Listing | None, after: Listing | None) -> str:
    if before is None or after is None:
        return "source changed"
    try:
        found = _first_difference(before.read, after.read)
    except BadListing:
        return "source changed"
    if found is None:
        return "sources changed"
    path, a, b = found
    if a is None:
        return f"source {path} added"
    if b is None:
        return f"source {path} removed"
    return f"source {path} changed ({_entry_change(a, b)})"


Records = Callable[[], Iterator[tuple[str, Fields]]]


class _Unordered(Exception):
    """A listing not in the walk's order (overlapping or unsorted sources)."""


def _first_difference(
    before: Records, after: Records
) -> tuple[str, Fields | None, Fields | None] | None:
    """The first path, in string order, whose entry differs between two listings:
    (path, before, after), None (absent) on one side when added or removed."""
    try:
        return _merged_difference(_ordered(before()), _ordered(after()))
    except _Unordered:  # read them whole (the last entry of a path counts)
        old, new = dict(before()), dict(after())
        for path in sorted(set(old) | set(new)):
            a, b = old.get(path), new.get(path)
            if a != b:
                return path, a, b
        return None


def _ordered(
    records: Iterator[tuple[str, Fields]],
) -> Iterator[tuple[tuple[str, ...], str, Fields]]:
    """(walk key, path, fields); :class:`_Unordered` when a key does not increase. The
    walk lists a directory's entries by name, parents first: the order of the paths'
    component tuples (the top of a directory source, ``.``, first)."""
    last: tuple[str, ...] | None = None
    for path, fields in records:
        key = () if path == "." else tuple(path.split("/"))
        if last is not None and key <= last:
            raise _Unordered
        last = key
        yield key, path, fields


def _merged_difference(
    before: Iterator[tuple[tuple[str, ...], str, Fields]],
    after: Iterator[tuple[tuple[str, ...], str, Fields]],
) -> tuple[str, Fields | None, Fields | None] | None:
    """:func:`_first_difference` of two listings in the walk's order, read side by side
    (both to their ends: each is checked against its digest when it ends)."""
    best: tuple[str, Fields | None, Fields | None] | None = None
    a, b = next(before, None), next(after, None)
    while a is not None or b is not None:
        found: tuple[str, Fields | None, Fields | None] | None
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            found = (a[1], a[2], None)
            a = next(before, None)
        elif a is None or b[0] < a[0]:
            found = (b[1], None, b[2])
            b = next(after, None)
        else:
            found = None if a[2] == b[2] else (a[1], a[2], b[2])
            a, b = next(before, None), next(after, None)
        if found is not None and (best is None or found[0] < best[0]):
            best = found
    return best


def _entry_change(a: Fields, b: Fields) -> str:
    if a[0] != b[0]:
        return f"type {a[0]} -> {b[0]}"
    parts = []
    if a[1] != b[1]:
        parts.append(f"mode {a[1]} -> {b[1]}")
    if a[3] != b[3]:
        if a[3].startswith("link:"):
            parts.append(f"symlink target {a[3][5:]} -> {b[3][5:]}")
        elif a[2] != b[2]:
            parts.append(f"content, {a[2]} -> {b[2]} bytes")
        else:
            parts.append("content")
    return ", ".join(parts) or "metadata"


def _first_changed_key(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            return name
    return None


def _changed_config_keys(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    keys = []
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            if name == "Env":
                old = dict(e.partition("=")[::2] for e in a.get(name) or [])
                new = dict(e.partition("=")[::2] for e in b.get(name) or [])
                changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
                keys.append("ENV " + ", ".join(changed) if changed else "Env")
            else:
                keys.append(name)
    return keys


def _clip(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


# -- --explain ------------------------------------------------------------------------------------
def format_inputs(
    key: str | None, inputs: dict[str, Any], files: dict[str, Fields] | None = None
) -> str:
    """The cache-key inputs of one step, for ``--explain`` (``files``: its source listing)."""
    lines = [f"key {key}"]
    for name in (
        "parent",
        "flags",
        "args",
        "epoch",
        "build_args",
        "global_args",
        "sources",
        "mounts",
    ):
        if name in inputs:
            lines.append(f"  {name}: {json.dumps(inputs[name], sort_keys=True)}")
    lines.append(f"  instruction: {json.dumps(inputs.get('instruction'), sort_keys=True)}")
    layers = inputs.get("parent_layers") or []
    lines.append(f"  parent layers ({len(layers)}): " + " ".join(d[7:19] for d in layers))
    lines.append(f"  parent config: {json.dumps(inputs.get('parent_config'), sort_keys=True)}")
    if files is not None:
        lines.append(f"  source files ({len(files)}):")
        for path, (kind, mode, size, content) in sorted(files.items()):
            shown = content[7:19] if str(content).startswith("sha256:") else content
            lines.append(f"    {path} {kind} {mode} {size} {shown}".rstrip())
    return "\n".join(lines)


# -- files ----------------------------------------------------------------------------------------
def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
        return None
    return data


def _write_json(directory: str, name: str, data: dict[str, Any]) -> None:
    os.makedirs(directory, exist_ok=True)
    text = json.dumps(data, separators=(",", ":"), sort_keys=True)
    write_atomic(os.path.join(directory, name), text, mode=0o600, durable=False)


def _epoch_change(old: object, new: object) -> str:
    """``set to 5 (was unset)``, ``unset (was 5)``, ``changed from 5 to 6``."""
    if old is None:
        return f"set to {new} (was unset)"
    if new is None:
        return f"unset (was {old})"
    return f"changed from {old} to {new}"
