"""WORKDIR: set the working directory and create it (owned by the current USER)."""

from __future__ import annotations

import os

from ocibuild._record import dataclass
from ocibuild.builder.metadata import clean_workdir
from ocibuild.builder.rootfs import commit_upper, mounted, workspace
from ocibuild.builder.step import StepContext, StepOutcome, fail
from ocibuild.builder.stepplan import StepPlan, StepView
from ocibuild.dockerfile.instructions import Workdir
from ocibuild.errors import OcibuildError
from ocibuild.runtime.users import resolve_owner
from ocibuild.storage import fsops


def plan_workdir(view: StepView, instr: Workdir) -> StepPlan:
    """WORKDIR: the config's WorkingDir, and an effect that creates the directory."""
    path = instr.path  # (expanded before dispatch)
    if not path:
        raise fail(instr, "WORKDIR requires a path", hint="e.g. WORKDIR /app")
    workdir = clean_workdir(view.stage.image.workdir, path)
    return StepPlan(
        config={"WorkingDir": workdir},
        effects=(MakeWorkdir(instr, workdir),),
        layer_history=f"WORKDIR {workdir}",
    )


@dataclass(frozen=True)
class MakeWorkdir:
    """Create the working directory (owned by the stage's USER) as a layer; an existing
    one makes no layer (an empty-layer history entry)."""

    instr: Workdir
    path: str

    def describe(self) -> str:
        return f"mkdir -p {self.path} (owner: USER), commit it as a layer unless it exists"

    def perform(self, ctx: StepContext) -> StepOutcome:
        instr, workdir = self.instr, self.path
        with workspace(ctx, "workdir-") as work:
            with mounted(ctx, ctx.image.diff_ids, work) as mnt:
                if os.path.isdir(fsops.host_path(mnt.target, workdir)):
                    return StepOutcome(note="exists")
                try:
                    # owned as BuildKit's mkdir WithUser: USER 1001 gives 1001:1001
                    uid, gid = resolve_owner(mnt.target, ctx.image.user or "0:0")
                    fsops.makedirs(mnt.target, workdir, uid=uid, gid=gid)
                except OcibuildError as exc:
                    raise fail(instr, exc.message, hint=exc.hint) from None
                except OSError as exc:
                    raise fail(instr, f"cannot create {workdir}: {exc.strerror}") from None
            return commit_upper(ctx, mnt.upper)
