"""The planner's stage rules and WORKDIR paths, as BuildKit v0.11.6 showed them (the
builds themselves are in tests/language/test_buildkit_observed.py)."""

from __future__ import annotations

import pytest

from ocibuild.builder.state import StageState, next_workdir, scratch_image
from ocibuild.dockerfile.parser import parse
from ocibuild.errors import DockerfileError
from ocibuild.plan import make_plan

DUP = (
    "FROM scratch AS a\nFROM scratch AS b\nFROM a AS mid\n"
    "FROM scratch AS a\nFROM scratch AS c\nCOPY --from=a / /\nFROM a AS d\n"
)


def test_repeated_stage_names_take_the_last_defined_before() -> None:
    plan = make_plan(parse(DUP), {})
    assert [s.name for s in plan.stages] == ["a", "b", "mid", "a", "c", "d"]
    assert plan.stages[2].base_stage == 0  # FROM a before the second a: the first
    assert plan.stages[5].base_stage == 3  # after it: the second
    assert plan.stage_ref("a", 4) == 3  # COPY --from=a in stage c
    assert plan.stage_ref("a", 3) == 0
    assert make_plan(parse(DUP), {}, target="a").target == 3
    assert make_plan(parse(DUP), {}, target="c").order == (3, 4)
    (warning,) = plan.warnings
    assert warning.startswith('Dockerfile:4: Duplicate stage name "a", stage names should be')


@pytest.mark.parametrize(
    "line",
    ["COPY --from=$NAME / /", "COPY --from=${NAME} / /", "COPY --from=a$X / /"],
)
def test_copy_from_is_never_expanded(line: str) -> None:
    text = f"ARG NAME=a\nFROM scratch AS a\nFROM scratch\n{line}\n"
    with pytest.raises(DockerfileError) as info:
        make_plan(parse(text), {})
    e = info.value
    assert e.message == (
        "variable expansion is not supported for --from, define a new stage with FROM "
        "using ARG from global scope as a workaround"
    )
    assert e.pos is not None and e.pos.line == 4 and e.instruction == line.split()[0]
    assert e.hint


def test_from_refs_checked_in_every_stage() -> None:
    # also in a stage --target does not need, as BuildKit converts every stage
    text = "FROM scratch AS a\nRUN --mount=from=$X,target=/m true\nFROM scratch AS b\n"
    with pytest.raises(DockerfileError, match="'from' doesn't support variable expansion"):
        make_plan(parse(text), {}, target="b")
    plain = make_plan(parse("FROM scratch AS a\nFROM scratch\nCOPY --from=a / /\n"), {})
    assert plain.order == (0, 1)


@pytest.mark.parametrize(
    ("current", "path", "expected"),
    [
        ("/", "/tmp/", "/tmp/"),
        ("/x", "a/", "/x/a"),
        ("/", "/p/../q/./r//", "/p/../q/./r//"),
        ("/p/../q/./r//", "../s/", "/q/s"),
        ("", "a", "/a"),
        ("/", ".", "/"),
    ],
)
def test_next_workdir(current: str, path: str, expected: str) -> None:
    assert next_workdir(current, path) == expected


def test_scratch_and_arg_environment() -> None:
    assert scratch_image().config == {"WorkingDir": "/"}
    state = StageState(scratch_image())
    state.image.set_env("E", "e")
    state.args = {"E": "argE", "A": "1"}  # ARG E after ENV E: the ARG's value
    assert state.expand_env() == {"E": "argE", "A": "1"}
    child = StageState(state.image.copy())
    child.inherit_args(state.args)  # the image's Env wins in a stage built FROM it
    assert child.expand_env() == {"E": "e", "A": "1"} and child.declared == []


def test_one_stage_graph_for_order_and_scheduling() -> None:
    # FROM, COPY --from and RUN --mount=from= are the edges; unused stages are pruned
    text = (
        "FROM scratch AS a\nFROM scratch AS b\nFROM a AS c\nCOPY --from=b /x /x\n"
        "FROM scratch AS unused\nFROM scratch AS d\nRUN --mount=from=c,target=/c true\n"
    )
    plan = make_plan(parse(text), {})
    assert plan.deps == {0: set(), 1: set(), 2: {0, 1}, 3: set(), 4: {2}}
    assert plan.order == (0, 1, 2, 4)
