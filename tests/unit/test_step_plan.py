"""A step's pure part: the expansion pass and the plans, with no store, mount or runtime."""

from __future__ import annotations

import copy

import pytest

from ocibuild.builder.planners import plan_step
from ocibuild.builder.state import ImageState, StageState
from ocibuild.builder.stepplan import StepView
from ocibuild.dockerfile.instructions import Copy, Expose, Instruction, Run
from ocibuild.dockerfile.parser import parse
from ocibuild.errors import BuildError
from ocibuild.plan import make_plan


def _view(
    text: str, config: dict[str, object] | None = None, args: dict[str, str] | None = None
) -> tuple[StepView, Instruction]:
    df = parse("FROM scratch\n" + text + "\n")
    plan = make_plan(df, {})
    stage = StageState(ImageState(config=dict(config or {})), args=dict(args or {}))
    view = StepView(stage, plan, frozenset(), {})
    return view, plan.stages[0].instructions[0]


def test_expansion_pass_expands_words_and_keeps_what_buildkit_keeps() -> None:
    view, instr = _view(
        "COPY --from=src --chown=$U --exclude=$X $A <<EOF $D\nbody $A\nEOF",
        args={"U": "1:2", "X": "*.o", "A": "a", "D": "/d"},
    )
    out = view.expanded(instr)
    assert isinstance(out, Copy)
    assert (out.chown, out.exclude, out.dest, out.from_) == ("1:2", ("*.o",), "/d", "src")
    assert out.sources == ("a", "<<EOF")  # the heredoc's name stays, its body too
    assert out.heredocs == instr.heredocs
    view, instr = _view("EXPOSE $P 90", args={"P": "80 81/udp"})
    assert isinstance(ex := view.expanded(instr), Expose) and ex.ports == ("80", "81/udp", "90")
    view, instr = _view(
        "RUN --network=$N --mount=type=cache,target=$T echo $N", args={"N": "none", "T": "/c"}
    )
    run = view.expanded(instr)
    assert isinstance(run, Run) and run.network == "none"
    assert run.mounts[0].fields == (("type", "cache"), ("target", "/c"))
    assert run.command.args == ("echo $N",)  # the shell expands commands


def test_expansion_errors_name_the_instruction() -> None:
    view, instr = _view("WORKDIR ${NOPE:?is required}")
    with pytest.raises(BuildError) as info:
        view.expanded(instr)
    assert info.value.pos is not None and info.value.pos.line == 2
    assert "is required" in info.value.message


def test_plans_are_pure_and_describe_themselves() -> None:
    config = {"Env": ["PATH=/bin", "A=old"], "Cmd": ["sh"]}
    view, instr = _view("ENV A=new B=$A", config=config, args={"A": "arg"})
    before = copy.deepcopy(view.stage)
    plan = plan_step(view, view.expanded(instr))
    assert view.stage == before  # planning changed nothing
    assert plan.config == {"Env": ["PATH=/bin", "A=new", "B=arg"]}
    assert plan.args_unset == ("A", "B") and plan.history == "ENV A=new B=arg"
    assert plan.effects == ()
    assert "history: ENV A=new B=arg (empty layer)" in plan.describe()
    view, instr = _view('ENTRYPOINT ["/x"]', config=config)
    plan = plan_step(view, view.expanded(instr))
    assert plan.unset == ("Cmd",) and plan.config == {"Entrypoint": ["/x"]}


def test_filesystem_steps_plan_effects() -> None:
    view, instr = _view("WORKDIR app", config={"WorkingDir": "/srv"})
    plan = plan_step(view, view.expanded(instr))
    assert plan.config == {"WorkingDir": "/srv/app"} and len(plan.effects) == 1
    assert "mkdir -p /srv/app" in plan.effects[0].describe()
    view, instr = _view("COPY --from=src a /b")
    plan = plan_step(view, view.expanded(instr))
    assert plan.history is None and plan.config == {}
    assert plan.effects[0].describe().startswith("copy a from stage or image 'src' to /b")
