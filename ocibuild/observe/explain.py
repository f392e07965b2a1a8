"""Why a step hit or missed the cache, and what its key is made of.

Every build records, per step, the inputs of its cache key (what
:meth:`StepCache.material` hashes) plus what explains them: the parent's layers and
config, and for COPY/ADD from the context a listing of the sources (path -> type,
permission bits, size, content digest). A record is filed under a stable step identity:
the Dockerfile (absolute path), the stage index and the instruction's index in the stage
(ONBUILD triggers first); the instruction text is kept in it too. Records live in
``ROOT/cache/explain/<identity>/<index>.json`` and are rewritten, without fsync, after
each step (a lost one only turns an explanation into "no earlier build").

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
import stat
import threading
from typing import TYPE_CHECKING, Any

from ocibuild._record import dataclass, field
from ocibuild.builder.cache import image_digest
from ocibuild.builder.hashing import HashCounters
from ocibuild.dockerfile.instructions import Copy, Instruction
from ocibuild.errors import OcibuildError
from ocibuild.fs.atomic import write_atomic
from ocibuild.plan import Stage

if TYPE_CHECKING:
    from ocibuild.builder.cache import StepCache
    from ocibuild.builder.step import StepContext

RECORD_VERSION = 1
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
        # what finished() compares: the old record's file listing is not kept through the
        # step (a COPY of 100k files would hold it, as Python objects, during the copy)
        step.previous = _header(previous)
        decision = Decision(status, key=key)
        same_key = previous is not None and previous.get("key") == key
        if material is not None and not (status == "hit" and same_key):
            decision.inputs = explain_inputs(ctx, instr, material)
        elif material is not None and previous is not None:
            decision.inputs = previous.get("inputs")
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
            ctx.reporter.note(format_inputs(key, decision.inputs))

    def finished(self, ctx: StepContext, *, failed: bool = False) -> None:
        """The step ended: record its inputs and result for the next build."""
        step = self._current.pop(ctx.stage_index, None)
        if step is None or step.decision is None:
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
            return f"{step.keyword} " + _sources_reason(old, new)
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
    """The key's material plus what explains it (not part of the key)."""
    inputs = dict(material)
    inputs["parent_layers"] = list(ctx.image.diff_ids)
    inputs["parent_config"] = ctx.image.config
    inputs = dict(json.loads(json.dumps(inputs)))  # as a record reads back (tuples: lists)
    if isinstance(instr, Copy) and instr.from_ is None and ctx.cache is not None:
        listing = source_listing(ctx, instr, ctx.cache)  # lists, str and int already:
        if listing is not None:  # not copied through JSON (100k files: tens of MB)
            inputs["source_files"] = listing
    return inputs


def source_listing(ctx: StepContext, instr: Copy, cache: StepCache) -> dict[str, list[Any]] | None:
    """path in the context -> [type, permission bits (octal), size, content]: what the
    sources' digest covers, file by file (digests come from the stat cache)."""
    out: dict[str, list[Any]] = {}
    counters = HashCounters()
    try:
        for pattern in (ctx.expand(instr, s) for s in instr.sources):
            for src in ctx.context.match(pattern):
                st = os.stat(src.host_path)
                if stat.S_ISDIR(st.st_mode):
                    out[src.rel or "."] = _entry(st, "")
                    for host, rel, entry_st in ctx.context.walk(src):
                        path = "/".join(p for p in (src.rel, rel) if p)
                        out[path] = _entry(
                            entry_st, _content(cache, path, host, entry_st, counters)
                        )
                else:
                    out[src.rel] = _entry(st, _content(cache, src.rel, src.host_path, st, counters))
    except (OcibuildError, OSError):
        return None
    return out


def _entry(st: os.stat_result, content: str) -> list[Any]:
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "other")
    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    return [kind, _mode_text(stat.S_IMODE(st.st_mode)), size, content]


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


def _sources_reason(old: dict[str, Any], new: dict[str, Any]) -> str:
    before = old.get("source_files")
    after = new.get("source_files")
    if not isinstance(before, dict) or not isinstance(after, dict):
        return "source changed"
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        if a == b:
            continue
        if a is None:
            return f"source {path} added"
        if b is None:
            return f"source {path} removed"
        return f"source {path} changed ({_entry_change(a, b)})"
    return "sources changed"


def _entry_change(a: list[Any], b: list[Any]) -> str:
    if a[0] != b[0]:
        return f"type {a[0]} -> {b[0]}"
    parts = []
    if a[1] != b[1]:
        parts.append(f"mode {a[1]} -> {b[1]}")
    if a[3] != b[3]:
        if str(a[3]).startswith("link:"):
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
def format_inputs(key: str | None, inputs: dict[str, Any]) -> str:
    """The cache-key inputs of one step, for ``--explain``."""
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
    files = inputs.get("source_files")
    if isinstance(files, dict):
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
