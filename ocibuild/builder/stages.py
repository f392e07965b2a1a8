"""Run the stages of a plan, independent ones in parallel threads.

A stage depends on the stage its FROM names, and on the stages its ``COPY --from`` and
``RUN --mount=...,from=`` name (never expanded: the plan refuses a ``$`` there). Stages
whose dependencies are built run at the same time, each in its own thread with its own
copy of the step context; the threads are created after the build process entered its
private mount namespace (``ensure_mount_namespace`` in the main thread, before any thread
exists), and threads share it, so their overlay mounts and runtimes behave as in the
serial case.

With parallel stages, each step's lines are written in one block when the step ends (see
:class:`StepBufferingReporter`). When a stage fails, the others stop at their next step
boundary and the first error is raised; Ctrl-C does the same.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ocibuild import _record
from ocibuild.builder.state import ImageState, StageState
from ocibuild.builder.step import StepContext
from ocibuild.observe.log import StepBufferingReporter
from ocibuild.observe.trace import StepTimings
from ocibuild.plan import Stage

if TYPE_CHECKING:
    from concurrent.futures import Future

RunStage = Callable[[StepContext, Stage, int, int], int]


def run_stages(
    ctx: StepContext,
    stages: Sequence[Stage],
    total: int,
    run_stage: RunStage,
) -> StageState:
    """Build ``stages`` (dependencies first); returns the last one's state."""
    wanted = {s.index for s in stages}
    deps = {s.index: set(ctx.plan.deps[s.index]) & wanted for s in stages}  # the plan's graph
    first: dict[int, int] = {}
    number = 0
    for s in stages:
        first[s.index] = number
        number += 1 + len(s.instructions)
    parallel = _has_independent(stages, deps)
    lock = threading.Lock()
    results: dict[int, StageState] = {}

    def build_one(stage: Stage, start: int) -> int:
        sctx = ctx
        if parallel:
            reporter = StepBufferingReporter(ctx.reporter, lock, f"[{stage.label}] ")
            sctx = _record.replace(
                ctx,
                reporter=reporter,
                stage=StageState(ImageState()),
                stage_flags=set(),
                timings=StepTimings(),
            )
        try:
            end = run_stage(sctx, stage, start, total)
        except BaseException:
            if isinstance(sctx.reporter, StepBufferingReporter):
                sctx.reporter.flush()
            raise
        ctx.stage_images[stage.index] = sctx.stage.image
        ctx.stage_args[stage.index] = dict(sctx.stage.args)
        results[stage.index] = sctx.stage
        return end

    if not parallel:
        start = 0
        for stage in stages:  # numbered as they come (ONBUILD triggers add steps)
            start = build_one(stage, start)
        return results[stages[-1].index]

    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait  # only now

    pending = list(stages)
    done: set[int] = set()
    running: dict[Future[int], int] = {}
    errors: list[BaseException] = []
    # Stages mostly wait on their RUN processes: every ready stage starts at once, as
    # BuildKit's solver does, up to a bound that keeps a huge fan-out from spawning
    # hundreds of runtimes (OCIBUILD_MAX_STAGES overrides it).
    workers = max(1, min(len(stages), _stage_limit()))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stage") as pool:
        try:
            while pending or running:
                if not errors:
                    for stage in list(pending):
                        if deps[stage.index] <= done:
                            pending.remove(stage)
                            fut = pool.submit(build_one, stage, first[stage.index])
                            running[fut] = stage.index
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    index = running.pop(fut)
                    exc = fut.exception()
                    if exc is not None:
                        errors.append(exc)
                        ctx.cancelled.set()
                    else:
                        done.add(index)
        except BaseException:  # Ctrl-C, SIGTERM: the pool's exit joins the stage threads
            ctx.cancelled.set()
            from ocibuild.runtime.runner import kill_running

            kill_running()  # so their RUN steps end now, not when their commands do
            raise
    if errors:
        raise errors[0]
    return results[stages[-1].index]


def _stage_limit() -> int:
    """How many stages may build at once: ``OCIBUILD_MAX_STAGES``, else 4 per CPU."""
    raw = os.environ.get("OCIBUILD_MAX_STAGES", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return max(8, 4 * (os.cpu_count() or 2))


def _has_independent(stages: Sequence[Stage], deps: dict[int, set[int]]) -> bool:
    """True when two of the stages could run at the same time."""
    closure: dict[int, set[int]] = {}
    for s in stages:  # dependencies first
        reach = set(deps[s.index])
        for d in deps[s.index]:
            reach |= closure.get(d, set())
        closure[s.index] = reach
    indexes = [s.index for s in stages]
    for i, a in enumerate(indexes):
        for b in indexes[i + 1 :]:
            if a not in closure[b] and b not in closure[a]:
                return True
    return False
