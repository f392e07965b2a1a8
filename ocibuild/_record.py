"""``dataclass`` as every module of ocibuild uses it, at a fraction of its start-up cost.

A fully cached build imports about 80 dataclasses. The standard decorator compiles up
to six methods for each one with ``exec`` (``__init__``, ``__repr__``, ``__eq__``,
``__hash__``, and for frozen classes ``__setattr__``, ``__delattr__``) and its module
imports ``inspect`` (with ``ast``, ``dis``, ``tokenize``): together about 45 ms of a
150 ms rebuild. Here:

* the fields are read from the class's annotations and defaults (``field()`` with
  ``default``, ``default_factory``, ``init``, ``repr``, ``compare``; inherited fields
  first), and ``dataclasses`` is not imported;
* ``__init__`` is compiled on the class's first instantiation (most classes on the
  import path are never instantiated by a build that runs nothing): the code the
  standard decorator generates, positional and keyword parameters in field order,
  defaults, factories, ``init=False`` fields, ``__post_init__``; a frozen class sets its
  fields with ``object.__setattr__``;
* ``__repr__``, ``__eq__``, ``__hash__`` (frozen classes), ``__setattr__`` and
  ``__delattr__`` (frozen classes) are shared functions reading the class's field names,
  with the standard semantics: a method the class defines itself is kept, equality only
  between instances of the same class, a non-frozen class is unhashable unless it says
  otherwise, assignment to a frozen instance raises ``dataclasses.FrozenInstanceError``;
* ``__dataclass_fields__`` is made by the standard module the first time something asks
  for it, so ``dataclasses.fields``, ``replace``, ``asdict`` and ``is_dataclass`` work on
  these classes unchanged; ocibuild itself uses this module's ``fields``, ``replace``
  and ``asdict``.

mypy sees the standard module (``TYPE_CHECKING``), so type checking is unchanged.
``tests/unit/test_record.py`` compares behaviour with ``dataclasses.dataclass``.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar

_T = TypeVar("_T")

__all__ = ["asdict", "dataclass", "field", "fields", "is_record", "replace"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    """One field: what ``fields()`` returns (``name``, ``type`` as written, ``default``,
    ``default_factory``, ``init``, ``repr``, ``compare``)."""

    __slots__ = ("compare", "default", "default_factory", "init", "name", "repr", "type")

    def __init__(
        self,
        default: Any = MISSING,
        default_factory: Any = MISSING,
        init: bool = True,
        repr: bool = True,
        compare: bool = True,
    ) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.compare = compare

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, default={self.default!r}, init={self.init!r})"


if TYPE_CHECKING:
    from dataclasses import asdict as asdict
    from dataclasses import dataclass as dataclass
    from dataclasses import field as field
    from dataclasses import fields as fields
    from dataclasses import replace as replace
else:

    def field(
        *,
        default: Any = MISSING,
        default_factory: Any = MISSING,
        init: bool = True,
        repr: bool = True,
        compare: bool = True,
    ) -> Any:
        """``dataclasses.field`` (the arguments ocibuild uses)."""
        return Field(default, default_factory, init, repr, compare)

    def dataclass(cls: type[_T] | None = None, /, *, frozen: bool = False) -> Any:
        """``@dataclass`` and ``@dataclass(frozen=True)``; see the module doc."""
        if cls is None:
            return lambda c: _record(c, frozen)
        return _record(cls, frozen)

    def fields(obj: Any) -> tuple[Field, ...]:
        """``dataclasses.fields`` for these classes: the fields in order."""
        try:
            return obj._record_fields  # type: ignore[no-any-return]
        except AttributeError:
            raise TypeError("must be called with a dataclass type or instance") from None

    def replace(obj: _T, /, **changes: Any) -> _T:
        """``dataclasses.replace``: a new instance with ``changes``."""
        for f in obj._record_fields:
            if not f.init:
                if f.name in changes:
                    raise ValueError(f"field {f.name} is declared with init=False")
            elif f.name not in changes:
                changes[f.name] = getattr(obj, f.name)
        return obj.__class__(**changes)

    def asdict(obj: Any) -> dict[str, Any]:
        """``dataclasses.asdict``: records, lists, tuples and dicts converted recursively."""
        if not hasattr(type(obj), "_record_fields"):
            raise TypeError("asdict() should be called on dataclass instances")
        return _asdict(obj)  # type: ignore[no-any-return]


def is_record(value: Any) -> bool:
    """An instance of a class made by this module's ``dataclass``."""
    return hasattr(type(value), "_record_fields")


def _asdict(value: Any) -> Any:
    kind = type(value)
    if hasattr(kind, "_record_fields"):
        return {f.name: _asdict(getattr(value, f.name)) for f in kind._record_fields}
    if kind in (list, tuple):
        return kind(_asdict(v) for v in value)
    if kind is dict:
        return {_asdict(k): _asdict(v) for k, v in value.items()}
    if kind in (str, int, float, bool, bytes) or value is None:
        return value
    import copy  # what the standard asdict does with anything else

    return copy.deepcopy(value)


def _kind(annotation: Any) -> str:
    """ "ClassVar", "InitVar" or "" (a field) for an annotation, written or evaluated."""
    text = annotation if isinstance(annotation, str) else repr(annotation)
    for kind in ("ClassVar", "InitVar"):
        if text.startswith((kind, f"typing.{kind}", f"dataclasses.{kind}")):
            return kind
    return ""


def _collect(cls: type) -> tuple[Field, ...]:
    found: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in base.__dict__.get("_record_fields", ()):
            found[f.name] = f
    own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 - no inspect import
    for name, annotation in own.items():
        kind = _kind(annotation)
        if kind == "InitVar":
            raise TypeError(f"{cls.__qualname__}.{name}: InitVar is not supported here")
        if kind == "ClassVar":
            continue
        value = cls.__dict__.get(name, MISSING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name, f.type = name, annotation
        if f.default is not MISSING and type(f.default).__hash__ is None:
            raise ValueError(
                f"mutable default {type(f.default)} for field {name} is not allowed: "
                "use default_factory"
            )
        if f.default is not MISSING:
            setattr(cls, name, f.default)
        elif name in cls.__dict__:
            delattr(cls, name)
        found[name] = f
    for name, value in cls.__dict__.items():
        if isinstance(value, Field) and name not in own:
            raise TypeError(f"{name!r} is a field but has no type annotation")
    return tuple(found.values())


def _record(cls: type[_T], frozen: bool) -> type[_T]:
    own = set(cls.__dict__)  # methods the class defines itself are kept
    explicit_hash = "__hash__" in own and not (cls.__dict__["__hash__"] is None and "__eq__" in own)
    record_fields = _collect(cls)
    _check_order(cls, record_fields)
    compared = tuple(f.name for f in record_fields if f.compare)
    attrs: dict[str, Any] = {
        "_record_fields": record_fields,
        "_record_frozen": frozen,
        "_record_names": frozenset(f.name for f in record_fields),
        "_record_key": staticmethod(_getter(compared)),
        "_record_shown": tuple(f.name for f in record_fields if f.repr),
        "__dataclass_fields__": _Standard("__dataclass_fields__"),
        "__dataclass_params__": _Standard("__dataclass_params__"),
    }
    for name, value in attrs.items():
        setattr(cls, name, value)
    methods: dict[str, Any] = {
        "__init__": _lazy_init(cls),
        "__repr__": _repr,
        "__eq__": _eq,
        "__match_args__": tuple(f.name for f in record_fields if f.init),
    }
    if frozen:
        methods |= {"__setattr__": _frozen_setattr, "__delattr__": _frozen_delattr}
    for name, method in methods.items():
        if name not in own:
            setattr(cls, name, method)
    if not explicit_hash:
        cls.__hash__ = _hash if frozen else None  # type: ignore[assignment]
    if not cls.__dict__.get("__doc__"):
        cls.__doc__ = cls.__name__
    return cls


class _Standard:
    """``__dataclass_fields__`` / ``__dataclass_params__`` as the standard module makes
    them, made (importing ``dataclasses``) the first time something asks."""

    def __init__(self, attr: str) -> None:
        self.attr = attr
        self.made: dict[type, Any] = {}

    def __get__(self, obj: Any, owner: type) -> Any:
        if owner not in self.made:
            import dataclasses

            shadow: dict[str, Any] = {"__annotations__": {}}
            for f in owner._record_fields:  # type: ignore[attr-defined]
                shadow["__annotations__"][f.name] = f.type
                shadow[f.name] = dataclasses.field(
                    default=dataclasses.MISSING if f.default is MISSING else f.default,
                    default_factory=(
                        dataclasses.MISSING if f.default_factory is MISSING else f.default_factory
                    ),
                    init=f.init,
                    repr=f.repr,
                    compare=f.compare,
                )
            made: Any = dataclasses.dataclass(
                type(owner.__name__, (), shadow),
                init=False,
                repr=False,
                eq=False,
                frozen=owner._record_frozen,  # type: ignore[attr-defined]
            )
            self.made[owner] = getattr(made, self.attr)
        return self.made[owner]


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda _obj: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return attrgetter(*names)


def _check_order(cls: type, record_fields: tuple[Field, ...]) -> None:
    seen_default = False
    for f in record_fields:
        if not f.init:
            continue
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        if seen_default and not has_default:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
        seen_default = seen_default or has_default


COMPILE_AFTER = 32  # instances made by the generic __init__ before the compiled one


def _lazy_init(cls: type) -> Callable[..., None]:
    """The class's first ``__init__``: binds the arguments in a loop (no ``exec``: most
    classes make a handful of instances in a build that runs nothing; compiling their
    ``__init__`` was 0.2 ms each), then, from the 33rd instance, the compiled one. Any
    call the loop does not bind plainly (a missing or unexpected argument) goes to the
    compiled one, which raises exactly the standard error."""
    frozen = cls._record_frozen  # type: ignore[attr-defined]
    record_fields = cls._record_fields  # type: ignore[attr-defined]
    params = tuple(f for f in record_fields if f.init)
    names = frozenset(f.name for f in params)
    others = tuple(f for f in record_fields if not f.init)
    post_init = hasattr(cls, "__post_init__")
    made = 0

    def compiled(self: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        real = _compile_init(cls)
        if cls.__dict__.get("__init__") is __init__:
            cls.__init__ = real  # type: ignore[misc]
        real(self, *args, **kwargs)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal made
        made += 1
        if made > COMPILE_AFTER or len(args) > len(params) or not kwargs.keys() <= names:
            return compiled(self, args, kwargs)
        values = []
        for i, f in enumerate(params):
            if i < len(args):
                if f.name in kwargs:
                    return compiled(self, args, kwargs)  # (given twice: the standard error)
                values.append(args[i])
            elif f.name in kwargs:
                values.append(kwargs[f.name])
            elif f.default_factory is not MISSING:
                values.append(f.default_factory())
            elif f.default is not MISSING:
                values.append(f.default)
            else:
                return compiled(self, args, kwargs)  # (missing: the standard error)
        put = object.__setattr__ if frozen else setattr
        for f, value in zip(params, values, strict=True):
            put(self, f.name, value)
        for f in others:
            if f.default_factory is not MISSING:
                put(self, f.name, f.default_factory())
            elif f.default is not MISSING:
                put(self, f.name, f.default)
        if post_init:
            self.__post_init__()
        return None

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


_FACTORY = object()  # the default of a parameter whose field has a default_factory


def _compile_init(cls: type) -> Callable[..., None]:
    """The ``__init__`` the standard decorator would generate for ``cls``."""
    frozen = cls._record_frozen  # type: ignore[attr-defined]
    env: dict[str, Any] = {"_FACTORY": _FACTORY, "_set": object.__setattr__}
    params: list[str] = []
    body: list[str] = []
    for i, f in enumerate(cls._record_fields):  # type: ignore[attr-defined]
        name = f.name
        has_factory = f.default_factory is not MISSING
        if has_factory:
            env[f"_f{i}"] = f.default_factory
        if f.default is not MISSING:
            env[f"_d{i}"] = f.default
        if not f.init:
            if has_factory:
                value = f"_f{i}()"
            elif f.default is not MISSING:
                value = f"_d{i}"
            else:
                continue
        elif has_factory:
            params.append(f"{name}=_FACTORY")
            value = f"_f{i}() if {name} is _FACTORY else {name}"
        else:
            params.append(f"{name}=_d{i}" if f.default is not MISSING else name)
            value = name
        body.append(
            f"    _set(self, {name!r}, {value})" if frozen else f"    self.{name} = {value}"
        )
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass")
    exec(source, env)
    init: Callable[..., None] = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _repr(self: Any) -> str:
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._record_shown)
    return f"{type(self).__qualname__}({inner})"


def _eq(self: Any, other: Any) -> Any:  # bool, or NotImplemented
    if other.__class__ is self.__class__:
        return self._record_key(self) == self._record_key(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(self._record_key(self))


def _frozen_error(message: str) -> Exception:
    import dataclasses

    return dataclasses.FrozenInstanceError(message)


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    # as the standard one: refused on the frozen class itself, and for its fields on a
    # subclass that is not a dataclass
    cls = type(self)
    if cls.__dict__.get("_record_frozen") or name in cls._record_names:
        raise _frozen_error(f"cannot assign to field {name!r}")
    object.__setattr__(self, name, value)


def _frozen_delattr(self: Any, name: str) -> None:
    cls = type(self)
    if cls.__dict__.get("_record_frozen") or name in cls._record_names:
        raise _frozen_error(f"cannot delete field {name!r}")
    object.__delattr__(self, name)
