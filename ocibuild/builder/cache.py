"""The per-step build cache: keys, the index under ``ROOT/cache/``, and the wrapper that
looks a step up before running it.

A step's key is the sha256 of a canonical JSON document holding:

* the parent: the image state before the step (diff_ids chain, config, author, os,
  architecture) and the stage's CMD-set flag (ENTRYPOINT depends on it);
* the ARGs in scope with their values (ENV is in the config);
* the instruction itself: every parsed field (flags, command, heredocs, sources...) but
  its position, so moving a line or adding a comment keeps the key;
* SOURCE_DATE_EPOCH (it changes mtimes in layers and history);
* the target platform, when it is not this machine's (TARGETARCH... differ);
* for ARG: the --build-arg and global values of the names it declares;
* for COPY/ADD: a digest of the sources after .dockerignore (see ``hashing``), or for
  ``--from`` the source stage's state (its layers are content addressed) or the image ID;
* for RUN ``--mount``: the same for each mount's ``from=`` stage or bind source.

An entry records what the step did to the state: its new layers (diff_ids), the history
entries it appended, the config, author, ARGs and stage flags after it. A hit replays that
record without mounting or running anything; a hit whose layers were removed from the
store (``rmi`` + gc) counts as a miss. Entries are ``ROOT/cache/steps/<key hex>.json``,
written temp -> rename without fsync (a lost entry is only a miss; a torn one does not
parse and is a miss too).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ocibuild import _record
from ocibuild._record import dataclass, field
from ocibuild.builder.context import Source, has_glob
from ocibuild.builder.events import CacheDecided
from ocibuild.builder.hashing import HashCounters, StatCache, hash_sources
from ocibuild.builder.heredoc import is_heredoc_word
from ocibuild.builder.state import ImageState
from ocibuild.builder.step import StepOutcome
from ocibuild.dockerfile.instructions import FLAG_FIELDS, Arg, Copy, Instruction, Run
from ocibuild.dockerfile.mounts import MountFlag, resolve_mount
from ocibuild.errors import OcibuildError
from ocibuild.fs.atomic import write_atomic
from ocibuild.image.model import canonical_json
from ocibuild.plan import Stage

if TYPE_CHECKING:
    from ocibuild.builder.remote_cache import RemoteCache
    from ocibuild.builder.step import StepContext
    from ocibuild.image.store import Store


class CacheObserver(Protocol):
    """Told when a step begins, its cache decision before it runs, and when it ends
    (``record``: its ``--trace`` record; ``error`` when it failed). See
    ``ocibuild.observe.records.BuildObserver``."""

    def begin(
        self, ctx: StepContext, stage: Stage, number: int, index: int, instr: Instruction
    ) -> None: ...

    def finished(
        self,
        ctx: StepContext,
        number: int,
        record: dict[str, Any] | None,
        error: BaseException | None,
    ) -> None: ...

    def decided(
        self,
        ctx: StepContext,
        stage: Stage,
        instr: Instruction,
        material: dict[str, Any] | None,
        key: str | None,
        status: str,
    ) -> None: ...


# 2: ARG/WORKDIR history and ARG values as BuildKit records them; 3: COPY/ADD resolve
# symlinked sources and destinations as BuildKit does, file steps key only the ARGs they
# name, layers drop entries equal to the layers below: results recorded before may differ.
KEY_VERSION = 3
Handler = Callable[["StepContext", Instruction], StepOutcome]


@dataclass
class CacheEntry:
    diff_ids: list[str]
    history: list[dict[str, Any]]
    config: dict[str, Any]
    author: str = ""
    args: dict[str, str] = field(default_factory=dict)
    consumed: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    diff_id: str | None = None
    size: int = 0
    note: str = ""

    @classmethod
    def from_json(cls, data: Any) -> CacheEntry | None:
        if not isinstance(data, dict) or data.get("version") != KEY_VERSION:
            return None
        try:
            return cls(
                diff_ids=[str(d) for d in data["diff_ids"]],
                history=list(data["history"]),
                config=dict(data["config"]),
                author=str(data.get("author", "")),
                args={str(k): str(v) for k, v in data.get("args", {}).items()},
                consumed=[str(c) for c in data.get("consumed", [])],
                flags=[str(f) for f in data.get("flags", [])],
                diff_id=data.get("diff_id"),
                size=int(data.get("size", 0)),
                note=str(data.get("note", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def image_digest(image: ImageState) -> str:
    """The part of an image state a later step can depend on (not its history)."""
    doc = {
        "diff_ids": image.diff_ids,
        "config": image.config,
        "author": image.author,
        "os": image.os,
        "architecture": image.architecture,
    }
    if image.variant:
        doc["variant"] = image.variant
    return "sha256:" + hashlib.sha256(canonical_json(doc)).hexdigest()


def key_of(material: dict[str, Any]) -> str:
    """A step's cache key: the sha256 of its inputs as canonical JSON."""
    return "sha256:" + hashlib.sha256(canonical_json(material)).hexdigest()


def instruction_material(instr: Instruction) -> dict[str, Any]:
    """The instruction as written, as JSON values: every field but its position and the
    typed flag fields (derived from ``flags``, which the key holds as written), so a
    typed field added later never changes a key. (The JSON is ``dataclasses.asdict``'s.)"""
    doc = _plain_instruction(instr)
    doc.pop("pos", None)
    doc["type"] = type(instr).__name__
    return doc


def _plain_instruction(instr: Instruction) -> dict[str, Any]:
    return {
        f.name: _plain(getattr(instr, f.name))
        for f in _record.fields(instr)
        if f.name not in FLAG_FIELDS
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Instruction):  # an ONBUILD trigger (its position included)
        return _plain_instruction(value)
    if _record.is_record(value):
        return {f.name: _plain(getattr(value, f.name)) for f in _record.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def args_material(
    args: dict[str, str], instr: Instruction, instruction: dict[str, Any]
) -> dict[str, str]:
    """The ARG values a step's key depends on.

    A RUN sees every ARG in scope in its environment (and ARG defaults may use earlier
    ARGs), so both depend on all of them. Any other step depends on an ARG only through
    the words it expands: BuildKit v0.11.6 keeps WORKDIR and COPY cached when a
    ``--build-arg`` only a later RUN uses changes (observed). Names the instruction's text
    mentions as ``$NAME`` or ``${NAME`` count (a superset: it only costs a miss).
    """
    if isinstance(instr, (Run, Arg)):
        return dict(sorted(args.items()))
    text = json.dumps(instruction, sort_keys=True)
    return {
        name: value
        for name, value in sorted(args.items())
        if f"${name}" in text or f"${{{name}" in text
    }


class StepCache:
    """The cache of one build: the index in the store plus the context's stat cache."""

    def __init__(
        self,
        store: Store,
        context_root: str,
        *,
        no_cache: bool = False,
        no_cache_filter: tuple[str, ...] = (),
        remote: RemoteCache | None = None,
    ) -> None:
        self.store = store
        self.remote = remote  # --cache-from/--cache-to (ocibuild.builder.remote_cache)
        self.dir = os.path.join(store.root, "cache")
        self.steps = os.path.join(self.dir, "steps")
        os.makedirs(self.steps, exist_ok=True)
        self.stat_cache = StatCache(self.dir, context_root)
        self.no_cache = no_cache
        self.no_cache_filter = {s.lower() for s in no_cache_filter}
        self.observer: CacheObserver | None = None  # explains decisions (build.explain)

    def close(self) -> None:
        self.stat_cache.save()

    # -- policy ------------------------------------------------------------------------------
    def lookup_allowed(self, stage: Stage) -> bool:
        if self.no_cache:
            return False
        names = {str(stage.index)} | ({stage.name} if stage.name else set())
        return not (names & self.no_cache_filter)

    # -- index -------------------------------------------------------------------------------
    def _path(self, key: str) -> str:
        return os.path.join(self.steps, key.partition(":")[2] + ".json")

    def get(self, key: str) -> CacheEntry | None:
        entry = self._get_local(key)
        if entry is None and self.remote is not None:
            entry = self.remote.get(key)  # its layers are in the store now
            if entry is not None:
                self.put(key, entry)
        return entry

    def record(self, stage: Stage, key: str, entry: CacheEntry) -> None:
        """A step's result (hit or built), for --cache-to."""
        if self.remote is not None:
            self.remote.record(stage.index, key, entry)

    def _get_local(self, key: str) -> CacheEntry | None:
        try:
            with open(self._path(key), "rb") as f:
                entry = CacheEntry.from_json(json.load(f))
        except (OSError, ValueError):
            return None
        if entry is None or not all(self.store.has_layer(d) for d in entry.diff_ids):
            return None
        return entry

    def put(self, key: str, entry: CacheEntry) -> None:
        data = canonical_json({"version": KEY_VERSION, "key": key, **_record.asdict(entry)})
        write_atomic(self._path(key), data, mode=0o600, durable=False)

    # -- keys --------------------------------------------------------------------------------
    def key(
        self, ctx: StepContext, instr: Instruction, expanded: Instruction | None = None
    ) -> str | None:
        """The step's key, or None when it cannot be computed (the handler then runs and
        reports the problem, e.g. a missing COPY source)."""
        material = self.material(ctx, instr, expanded)
        return None if material is None else key_of(material)

    def material(
        self, ctx: StepContext, instr: Instruction, expanded: Instruction | None = None
    ) -> dict[str, Any] | None:
        """The inputs the key is the hash of (see :func:`key_of`), or None: the
        instruction as written, and what its expanded words (``expanded``, computed from
        ``instr`` when not given) name: COPY sources, RUN --mount sources."""
        if expanded is None:
            expanded = ctx.expanded(instr)
        instruction = instruction_material(instr)
        material: dict[str, Any] = {
            "v": KEY_VERSION,
            "parent": image_digest(ctx.image),
            "flags": sorted(ctx.stage_flags),
            "args": args_material(ctx.stage.args, instr, instruction),
            "instruction": instruction,
            "epoch": ctx.options.source_date_epoch,
        }
        target = ctx.plan.platform_args.get("TARGETPLATFORM")
        if target != ctx.plan.platform_args.get("BUILDPLATFORM"):
            # a cross-platform build: TARGET* ARGs (replayed by an ARG hit) and the base
            # differ, so no step may hit a native build's entry (keys of native builds
            # stay as they were)
            material["platform"] = target
        counters = HashCounters()
        try:
            if isinstance(instr, Arg):
                names = [name for name, _ in instr.args]
                material["build_args"] = {n: ctx.build_args.get(n) for n in names}
                material["global_args"] = {n: ctx.plan.global_args.get(n) for n in names}
            elif isinstance(expanded, Copy):
                sources = self._copy_sources(ctx, expanded, counters)
                if sources is None:
                    return None
                material["sources"] = sources
            elif isinstance(expanded, Run) and expanded.mounts:
                mounts = [self._mount_source(ctx, expanded, m, counters) for m in expanded.mounts]
                if any(m is None for m in mounts):
                    return None
                material["mounts"] = mounts
            options = ctx.options
            if isinstance(instr, Run) and (
                options.add_hosts or options.ulimits or options.shm_size
            ):
                # --add-host/--ulimit/--shm-size change what a RUN sees (only when given:
                # the keys of builds without them stay as they were)
                material["host"] = [options.add_hosts, options.ulimits, options.shm_size]
        except (OcibuildError, OSError):
            return None
        finally:
            ctx.timings.context_files += counters.files
            ctx.timings.context_files_read += counters.files_read
            ctx.timings.context_bytes_read += counters.bytes_read
        return material

    def _from_ref(self, ctx: StepContext, ref: str) -> str | None:
        index = ctx.plan.stage_ref(ref, ctx.stage_index)
        if index is not None:
            image = ctx.stage_images.get(index)
            return None if image is None else "stage:" + image_digest(image)
        return "image:" + self.store.resolve(ref)

    def _context_digest(
        self, ctx: StepContext, patterns: list[str], counters: HashCounters
    ) -> str | None:
        matches: list[Source] = []
        for pattern in patterns:
            found = ctx.context.match(pattern)
            if not found and not has_glob(pattern):
                return None  # a missing source: the handler reports it
            matches.extend(found)  # a wildcard matching nothing adds nothing
        return hash_sources(ctx.context, matches, self.stat_cache, counters)

    def _copy_sources(self, ctx: StepContext, instr: Copy, counters: HashCounters) -> str | None:
        if instr.from_ is not None:
            return self._from_ref(ctx, instr.from_)
        # Heredoc sources are not in the context: their text (and the ARGs it names)
        # is part of the instruction material already.
        docs = len(instr.heredocs)
        sources = []
        for raw in instr.sources:
            if docs and is_heredoc_word(raw):
                docs -= 1
                continue
            sources.append(raw)  # (expanded before dispatch)
        return self._context_digest(ctx, sources, counters)

    def _mount_source(
        self, ctx: StepContext, instr: Run, flag: MountFlag, counters: HashCounters
    ) -> str | None:
        """What a mount reads: its ``from=`` stage or image, else a bind's context files.
        An invalid mount has no key (the step then reports it)."""
        spec = resolve_mount(flag, str, ctx.image.workdir)  # (values expanded already)
        if spec.from_:
            return self._from_ref(ctx, spec.from_)
        if spec.type == "bind":
            return self._context_digest(ctx, [spec.source or "."], counters)
        return ""


# -- the wrapper the executor calls ------------------------------------------------------------
@dataclass
class _Before:
    layers: int
    history: int


def run_with_cache(
    ctx: StepContext,
    stage: Stage,
    number: int,
    instr: Instruction,
    handler: Handler,
    expanded: Instruction | None = None,
) -> tuple[StepOutcome, str, str | None]:
    """Run ``instr`` through the cache: (outcome, "hit"/"miss"/"off"/"none", key); the
    decision is a :class:`CacheDecided` event, before the step runs."""
    if expanded is None:
        expanded = ctx.expanded(instr)
    cache = ctx.cache
    if cache is None:
        return handler(ctx, expanded), "none", None
    with ctx.timings.phase("key"):
        material = cache.material(ctx, instr, expanded)
        key = None if material is None else key_of(material)
    if key is None:
        ctx.emit(CacheDecided(number, stage, instr, "none", None, None))
        return handler(ctx, expanded), "none", None
    status = "off"
    if cache.lookup_allowed(stage):
        entry = cache.get(key)
        if entry is not None:
            cache.record(stage, key, entry)
            ctx.emit(CacheDecided(number, stage, instr, "hit", key, material))
            return apply_entry(ctx, entry, args=isinstance(instr, Arg)), "hit", key
        status = "miss"
    with ctx.timings.phase("key"):  # says why before the step's output
        ctx.emit(CacheDecided(number, stage, instr, status, key, material))
    before = _Before(len(ctx.image.diff_ids), len(ctx.image.history))
    outcome = handler(ctx, expanded)
    image = ctx.image
    consumed = [name for name, _ in instr.args] if isinstance(instr, Arg) else []
    entry = CacheEntry(
        diff_ids=list(image.diff_ids[before.layers :]),
        history=copy.deepcopy(image.history[before.history :]),
        config=copy.deepcopy(image.config),
        author=image.author,
        args=dict(ctx.stage.args),
        consumed=[c for c in consumed if c in ctx.consumed_args],
        flags=sorted(ctx.stage_flags),
        diff_id=outcome.diff_id,
        size=outcome.size,
        note=outcome.note,
    )
    cache.put(key, entry)
    cache.record(stage, key, entry)
    return outcome, status, key


def apply_entry(ctx: StepContext, entry: CacheEntry, *, args: bool = True) -> StepOutcome:
    """Replay a recorded step on the current state (nothing is mounted or run); the
    recorded ARG values only for an ARG step (other keys leave ARGs they do not use out,
    so the entry may come from a build with other values)."""
    image = ctx.image
    image.config = copy.deepcopy(entry.config)
    image.author = entry.author
    image.diff_ids.extend(entry.diff_ids)
    image.history.extend(copy.deepcopy(entry.history))
    if args:
        ctx.stage.args = dict(entry.args)
    ctx.consumed_args.update(entry.consumed)
    ctx.stage_flags.clear()
    ctx.stage_flags.update(entry.flags)
    if entry.diff_id:
        size = ctx.store.layer_info(entry.diff_id).get("size", entry.size)
        ctx.timings.layer_bytes = int(size or 0)
    return StepOutcome(diff_id=entry.diff_id, size=entry.size, note=entry.note)
