"""``ocibuild._record.dataclass`` behaves as ``dataclasses.dataclass`` for what ocibuild uses:
each case builds the same class with both decorators and compares what a caller sees."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from ocibuild import _record


def _pair(frozen: bool) -> tuple[type[Any], type[Any]]:
    def body(field: Any) -> dict[str, Any]:
        return {
            "__annotations__": {"a": "int", "b": "str", "c": "tuple[int]", "d": "int", "e": "int"},
            "b": "x",
            "c": field(default_factory=tuple),
            "d": field(default=4, init=False),
            "e": field(default=5, repr=False, compare=False),
        }

    std = dataclasses.dataclass(frozen=frozen)(type("Std", (), body(dataclasses.field)))
    ours = _record.dataclass(frozen=frozen)(type("Ours", (), body(_record.field)))
    return std, ours


def _seen(obj: Any) -> tuple[Any, ...]:
    return (dataclasses.asdict(obj), repr(obj).split("(", 1)[1], dataclasses.is_dataclass(obj))


@pytest.mark.parametrize("frozen", [False, True])
def test_same_construction_repr_fields_and_replace(frozen: bool) -> None:
    std, ours = _pair(frozen)
    for args, kwargs in [((1,), {}), ((1, "y"), {}), ((1,), {"c": (2,), "e": 7}), ((), {"a": 3})]:
        assert _seen(std(*args, **kwargs)) == _seen(ours(*args, **kwargs))
    assert [f.name for f in dataclasses.fields(ours)] == [f.name for f in dataclasses.fields(std)]
    mine = dataclasses.replace(ours(1), b="z")
    assert (mine.a, mine.b, mine.d) == (1, "z", 4)
    assert ours(1).c == ()  # from the factory
    for bad_args, bad_kwargs in [((), {}), ((1,), {"d": 3}), ((1, "b", [], 5, 6, 7), {})]:
        with pytest.raises(TypeError) as std_error:
            std(*bad_args, **bad_kwargs)
        with pytest.raises(TypeError) as our_error:
            ours(*bad_args, **bad_kwargs)
        assert str(our_error.value).replace("Ours", "Std") == str(std_error.value)


@pytest.mark.parametrize("frozen", [False, True])
def test_same_equality_and_hashing(frozen: bool) -> None:
    std, ours = _pair(frozen)
    assert ours(1, e=1) == ours(1, e=2)  # e is not compared
    assert ours(1) != ours(2)
    assert ours(1) != std(1)
    assert (ours(1) == object()) is False
    if frozen:
        assert hash(ours(1, "q")) == hash(ours(1, "q"))
        assert {ours(1): 1}[ours(1)] == 1
    else:
        with pytest.raises(TypeError):
            hash(ours(1))
        with pytest.raises(TypeError):
            hash(std(1))


def test_frozen_refuses_assignment_and_deletion() -> None:
    _, ours = _pair(True)
    obj = ours(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        obj.a = 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        del obj.a
    with pytest.raises(dataclasses.FrozenInstanceError):
        obj.other = 1
    assert copy.deepcopy(obj) == obj
    assert copy.copy(obj) == obj


def test_own_methods_post_init_and_inheritance_are_kept() -> None:
    @_record.dataclass(frozen=True)
    class Base:
        x: int

        def __repr__(self) -> str:
            return f"<{self.x}>"

    @_record.dataclass(frozen=True)
    class Child(Base):
        y: int = 2

        def __post_init__(self) -> None:
            if self.y < 0:
                raise ValueError("negative")

    @_record.dataclass
    class Hashable:
        x: int

        def __hash__(self) -> int:
            return 42

    assert repr(Base(1)) == "<1>"
    # as the standard decorator: a subclass that is a dataclass gets its own __repr__
    assert (Child(1).x, Child(1).y, repr(Child(1, 3)).split(".")[-1]) == (1, 2, "Child(x=1, y=3)")
    assert Child(1) != Base(1)
    with pytest.raises(ValueError, match="negative"):
        Child(1, -1)
    assert hash(Hashable(1)) == 42
    with pytest.raises(TypeError, match="non-default argument"):
        _record.dataclass(type("Bad", (), {"__annotations__": {"a": "int", "b": "int"}, "a": 1}))


def test_own_helpers_agree_with_the_standard_ones() -> None:
    @_record.dataclass(frozen=True)
    class Inner:
        n: int
        tags: tuple[str, ...] = _record.field(default_factory=tuple)

    @_record.dataclass
    class Outer:
        inner: Inner
        items: list[Inner] = _record.field(default_factory=list)
        extra: dict[str, int] = _record.field(default_factory=dict)
        hidden: int = _record.field(default=0, init=False)

    obj = Outer(Inner(1, ("a",)), [Inner(2)], {"k": 3})
    assert _record.asdict(obj) == dataclasses.asdict(obj)
    assert [f.name for f in _record.fields(obj)] == [f.name for f in dataclasses.fields(obj)]
    assert _record.replace(obj, extra={}) == dataclasses.replace(obj, extra={})
    with pytest.raises(ValueError, match="init=False"):
        _record.replace(obj, hidden=1)
    assert _record.is_record(obj) and not _record.is_record(Outer)
    assert dataclasses.is_dataclass(obj)


def test_a_cached_build_imports_only_what_it_uses() -> None:
    """Start-up is most of a fully cached rebuild: the build command's modules must not
    pull in the standard dataclasses (inspect, ast), subprocess, tempfile, sockets or
    thread pools; those are imported by the steps that run something."""
    import subprocess
    import sys

    heavy = ("dataclasses", "inspect", "subprocess", "tempfile", "socket", "concurrent.futures")
    code = (
        "import sys, ocibuild.cli, ocibuild.cli.build, ocibuild.builder.executor;"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("frozen", [False, True])
def test_the_loop_init_and_the_compiled_one_agree(frozen: bool) -> None:
    """The first instances are made by the generic __init__, the later ones by the compiled
    one: both give what the standard decorator gives."""
    std, ours = _pair(frozen)
    calls = [((1,), {}), ((1, "y"), {}), ((1,), {"c": (2,), "e": 7}), ((), {"a": 3, "b": "z"})]
    for n in range(_record.COMPILE_AFTER + 8):
        args, kwargs = calls[n % len(calls)]
        assert _seen(std(*args, **kwargs)) == _seen(ours(*args, **kwargs)), n
    with pytest.raises(TypeError, match="multiple values"):
        ours(1, a=2)
