"""Every build records itself in the store: ``ROOT/builds/<ID>/``.

* ``build.json``: the build's record (the same document ``--report FILE`` writes, see
  :mod:`ocibuild.observe.report`): Dockerfile, context, status, image, per-step cache decision
  and reason, time split, layer; updated when the build ends (``running`` until then);
* ``steps/<N>.log``: the full, unclipped output of step N (what the terminal showed
  indented, byte for byte);
* ``failed/step-N/``: a failed RUN kept by ``--keep-failed`` (:mod:`ocibuild.observe.forensics`).

Build IDs sort by time (``20250101-120000123-1a2b3c``, to the millisecond); commands take
a unique prefix of one, or ``last``. The newest :data:`KEEP_BUILDS` records are kept
(older ones are dropped when a build starts, unless they hold a kept failure:
``ocibuild prune`` removes those).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import threading
import time
from typing import IO, TYPE_CHECKING, Any

from ocibuild._record import dataclass, field
from ocibuild.errors import OcibuildError
from ocibuild.fs.atomic import write_atomic
from ocibuild.image.store import private_dir
from ocibuild.observe.explain import Explainer, dockerfile_identity
from ocibuild.observe.forensics import FAILED_DIR, StepHook
from ocibuild.observe.log import Reporter
from ocibuild.observe.trace import step_record

if TYPE_CHECKING:
    from ocibuild.builder.executor import StepRecord
    from ocibuild.builder.step import StepContext
    from ocibuild.dockerfile.instructions import Instruction
    from ocibuild.image.store import Store
    from ocibuild.options import Options
    from ocibuild.plan import Stage

BUILDS_DIR = "builds"
KEEP_BUILDS = 100


def builds_dir(store_root: str) -> str:
    return os.path.join(store_root, BUILDS_DIR)


def new_build_id() -> str:
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{stamp}{int(now % 1 * 1000):03d}-{os.urandom(3).hex()}"


@dataclass
class StepInfo:
    """What the observer learns about one step while it runs."""

    number: int
    stage: str
    instruction: str
    line: int
    parent_layers: list[str]
    record: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    exit_code: int | None = None  # a RUN step that exited non-zero: its status
    started: float = 0.0  # time.monotonic() when the step began


class BuildObserver:
    """The executor's ``StepCache.observer``: cache explanations, the per-step record,
    and the ``--keep-failed``/``--keep-bundles`` hook of each step."""

    def __init__(self, log: BuildLog, explainer: Explainer) -> None:
        self.log = log
        self.explainer = explainer
        self.steps: dict[int, StepInfo] = {}
        self._lock = threading.Lock()

    def begin(
        self, ctx: StepContext, stage: Stage, number: int, index: int, instr: Instruction
    ) -> None:
        text = instr.original.strip()
        with self._lock:
            self.steps[number] = StepInfo(
                number,
                stage.label,
                text,
                instr.pos.line,
                list(ctx.image.diff_ids),
                started=time.monotonic(),
            )
        ctx.on_bundle = StepHook(
            build_id=self.log.id,
            build_dir=self.log.dir,
            number=number,
            instruction=text,
            line=instr.pos.line,
            read_secret=functools.partial(_secret_value, secrets=ctx.options.secrets),
        )
        self.explainer.begin(ctx, stage, number, index, instr)

    def decided(
        self,
        ctx: StepContext,
        stage: Stage,
        instr: Instruction,
        material: dict[str, Any] | None,
        key: str | None,
        status: str,
    ) -> None:
        self.explainer.decided(ctx, stage, instr, material, key, status)

    def finished(
        self,
        ctx: StepContext,
        number: int,
        record: dict[str, Any] | None,
        error: BaseException | None,
    ) -> None:
        ctx.on_bundle = None
        self.explainer.finished(ctx, failed=error is not None)
        info = self.steps.get(number)
        if info is None:
            return
        if record is not None:
            info.record = record
        if error is not None:
            info.error = getattr(error, "message", None) or str(error) or type(error).__name__
            info.exit_code = getattr(error, "exit_status", None)
            info.record = self._failure_record(ctx, number, info)
            if ctx.tracer is not None:  # --trace: the failing step too
                ctx.tracer.write(info.record)

    def _failure_record(self, ctx: StepContext, number: int, info: StepInfo) -> dict[str, Any]:
        """The trace record of a step that failed: its real time, its error and status."""
        decision = self.explainer.decisions.get(number)
        record = step_record(
            number=number,
            stage=info.stage,
            instruction=info.instruction,
            line=info.line,
            seconds=time.monotonic() - info.started,
            cache=decision.status if decision is not None else "none",
            cache_key=decision.key if decision is not None else None,
            timings=ctx.timings,
            diff_id=None,
        )
        record["error"] = info.error
        record["exit_code"] = info.exit_code
        return record


class BuildLog:
    """The record of one build in the store."""

    # what was asked for, recorded in build.json (set by ocibuild.api.build)
    build_args: dict[str, str] | None = None
    target: str | None = None
    platform: str = ""

    def __init__(self, store: Store, *, dockerfile: str | None, context: str, options: Options):
        self.store = store
        self.id = new_build_id()
        self.dir = os.path.join(builds_dir(store.root), self.id)
        private_dir(builds_dir(store.root))
        os.mkdir(self.dir, 0o700)
        os.mkdir(os.path.join(self.dir, "steps"), 0o700)
        self.started = time.time()
        self.dockerfile = dockerfile
        self.context = context
        self.options = options
        self.observer = BuildObserver(
            self,
            Explainer(
                store.root, dockerfile_identity(dockerfile, context), explain=options.explain
            ),
        )
        self._file: IO[bytes] | None = None
        self._path = ""  # the current step's log, made at its first output
        self.announced: dict[int, str] = {}  # step number -> the step line's text
        self.save({"id": self.id, "status": "running", "started": self.started})
        _drop_old_builds(builds_dir(store.root), keep=KEEP_BUILDS)

    # -- step output ----------------------------------------------------------------------
    def reporter(self, inner: Reporter) -> Reporter:
        return TeeReporter(inner, self)

    def open_step(self, number: int, text: str) -> None:
        self.close_step()
        # made at the step's first output: a step that prints nothing (a cache hit) has
        # no file (`ocibuild logs` shows it empty); a file creation costs 0.1-1 ms
        self._path = step_log_path(self.dir, number)
        self.announced[number] = text

    def write_output(self, data: bytes) -> None:
        if self._file is None and self._path:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
            # 0600: a step's output may print a secret
            self._file = os.fdopen(os.open(self._path, flags, 0o600), "ab")
        if self._file is not None:
            self._file.write(data)

    def close_step(self) -> None:
        self._path = ""
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- the record ---------------------------------------------------------------------------
    def save(self, doc: dict[str, Any]) -> None:
        # compact: the C encoder (indent= takes the pure-Python one, 2-3 ms a build);
        # `ocibuild report BUILD` prints it indented
        _write_json(os.path.join(self.dir, "build.json"), doc, indent=None)

    def finish(
        self,
        *,
        records: list[StepRecord],
        image_id: str | None,
        tags: list[str],
        error: BaseException | None = None,
    ) -> dict[str, Any]:
        """Write ``build.json`` (and ``--report FILE``); returns the document."""
        from ocibuild.observe.report import build_report

        self.close_step()
        doc = build_report(self, records=records, image_id=image_id, tags=tags, error=error)
        self.save(doc)
        if self.options.report:
            _write_json(self.options.report, doc)
        return doc


class TeeReporter:
    """Passes everything to ``inner`` and keeps each step's output in the build log."""

    def __init__(self, inner: Reporter, log: BuildLog) -> None:
        self.inner = inner
        self.log = log

    def step(self, number: int, total: int, text: str) -> None:
        self.log.open_step(number, text)
        self.inner.step(number, total, text)

    def output(self, data: bytes) -> None:
        self.log.write_output(data)
        self.inner.output(data)

    def note(self, text: str) -> None:
        self.inner.note(text)

    def step_done(self, seconds: float, note: str = "", *, cached: bool = False) -> None:
        self.log.close_step()
        self.inner.step_done(seconds, note, cached=cached)

    def info(self, message: str) -> None:
        self.inner.info(message)

    def debug(self, message: str) -> None:
        self.inner.debug(message)


# -- reading the records --------------------------------------------------------------------------
def list_builds(store_root: str) -> list[dict[str, Any]]:
    """Every recorded build's ``build.json``, oldest first."""
    base = builds_dir(store_root)
    out = []
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir(base)):
            doc = _read_json(os.path.join(base, name, "build.json"))
            if doc is not None:
                doc.setdefault("id", name)
                out.append(doc)
    return out


def find_build(store_root: str, ref: str, *, failed: bool = False) -> str:
    """The build dir of ``ref``: a build ID, a unique prefix of one, or ``last`` (with
    ``failed``: the last build that kept a failed step)."""
    base = builds_dir(store_root)
    try:
        names = sorted(n for n in os.listdir(base) if not n.startswith("."))
    except FileNotFoundError:
        names = []
    if failed and ref in ("last", "latest"):
        names = [n for n in names if os.path.isdir(os.path.join(base, n, FAILED_DIR))]
    if ref in ("last", "latest"):
        matches = names[-1:]
    else:
        matches = [n for n in names if n == ref] or [n for n in names if n.startswith(ref)]
    if len(matches) != 1:
        what = "no build" if not matches else f"{len(matches)} builds"
        raise OcibuildError(
            f"{what} matching {ref!r}", hint="`ocibuild builds` lists them; or give `last`"
        )
    return os.path.join(base, matches[0])


def read_build(build_dir: str) -> dict[str, Any]:
    doc = _read_json(os.path.join(build_dir, "build.json"))
    if doc is None:
        raise OcibuildError(f"no record in {build_dir}")
    return doc


def step_log_path(build_dir: str, number: int) -> str:
    return os.path.join(build_dir, "steps", f"{number}.log")


def kept_failures(store_root: str) -> list[str]:
    """Dirs of failed steps kept by ``--keep-failed``."""
    out = []
    base = builds_dir(store_root)
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir(base)):
            failed = os.path.join(base, name, FAILED_DIR)
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                out += [os.path.join(failed, s) for s in sorted(os.listdir(failed))]
    return out


def remove_kept_failures(store_root: str) -> list[str]:
    """``ocibuild prune``: remove every kept failure; returns their dirs."""
    removed = kept_failures(store_root)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    for path in {os.path.dirname(p) for p in removed}:
        with contextlib.suppress(OSError):
            os.rmdir(path)
    return removed


def _drop_old_builds(base: str, *, keep: int) -> None:
    try:
        names = sorted(n for n in os.listdir(base) if not n.startswith("."))
    except FileNotFoundError:
        return
    for name in names[:-keep] if len(names) > keep else []:
        path = os.path.join(base, name)
        if not os.path.isdir(os.path.join(path, FAILED_DIR)):
            shutil.rmtree(path, ignore_errors=True)


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: str, data: dict[str, Any], indent: int | None = 2) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    text = json.dumps(data, indent=indent, separators=None if indent else (",", ":"))
    write_atomic(path, text + "\n", mode=0o600, durable=False)


def _secret_value(*args: Any, **kwargs: Any) -> Any:
    """``builder.mounts.secret_value``, imported when a failed step asks for it (the
    mounts module brings the layer code with it: not for a build that runs nothing)."""
    from ocibuild.builder.mounts import secret_value

    return secret_value(*args, **kwargs)
