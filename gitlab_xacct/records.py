"""Value classes for the package: `dataclasses`' behaviour without its start-up cost.

On Python 3.11 `dataclasses` compiles every generated method with an exec() of its own (six
for a frozen class) and imports `inspect`: about 1.3 ms per class, 40 ms of every `copy` for
the 27 classes it loads, a sixth of the whole process when every blob is already there.
`record` gives a class the same methods (`__init__`, `__repr__`, `__eq__`, `__hash__`, frozen
`__setattr__`/`__delattr__`, ordering on request) but compiles only `__init__`, whose signature
is the constructor's; the others are shared functions that read the field names from the class
(0.2 ms a class). Type checkers read it as a dataclass (PEP 681), so mypy checks constructors,
defaults and frozenness as before.

Covered: positional or keyword-only fields, defaults, `field(default_factory=...)`,
`field(repr=False)` (secrets stay out of reprs), `frozen`, `order`. Not covered, and refused
rather than ignored: inheritance between records, `__post_init__`, `InitVar`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

_T = TypeVar("_T")
_MISSING: Any = object()


class FrozenInstanceError(AttributeError):
    """Assigning to a field of a frozen record."""


class Field:
    __slots__ = ("default", "default_factory", "repr")

    def __init__(self, default: Any, default_factory: Any, repr: bool) -> None:
        self.default = default
        self.default_factory = default_factory
        self.repr = repr


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] = _MISSING,
    repr: bool = True,
) -> Any:
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("a field cannot have both a default and a default_factory")
    return Field(default, default_factory, repr)


@overload
def record(cls: type[_T], /) -> type[_T]: ...
@overload
def record(
    *, frozen: bool = False, kw_only: bool = False, order: bool = False
) -> Callable[[type[_T]], type[_T]]: ...
@dataclass_transform(field_specifiers=(field,))
def record(
    cls: type[_T] | None = None,
    /,
    *,
    frozen: bool = False,
    kw_only: bool = False,
    order: bool = False,
) -> type[_T] | Callable[[type[_T]], type[_T]]:
    """Make `cls` a value class from its annotated attributes, as `@dataclass(...)` would."""

    def wrap(cls: type[_T]) -> type[_T]:
        return _build(cls, frozen=frozen, kw_only=kw_only, order=order)

    return wrap if cls is None else wrap(cls)


def replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of record `obj` with some fields changed, like `dataclasses.replace`."""
    names: tuple[str, ...] = type(obj).__record_fields__  # type: ignore[attr-defined]
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    return type(obj)(**{name: changes.get(name, getattr(obj, name)) for name in names})


def _build(cls: type[_T], *, frozen: bool, kw_only: bool, order: bool) -> type[_T]:
    if any(hasattr(base, "__record_fields__") for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__name__}: records do not inherit from records")
    if "__post_init__" in cls.__dict__:
        raise TypeError(f"{cls.__name__}: records have no __post_init__")
    fields = _fields(cls, kw_only)
    methods: dict[str, Any] = {
        "__init__": _init(cls, fields, frozen=frozen, kw_only=kw_only),
        "__repr__": _repr,
        "__eq__": _eq,
    }
    if order:
        methods |= {"__lt__": _lt, "__le__": _le, "__gt__": _gt, "__ge__": _ge}
    if frozen:
        methods |= {"__hash__": _hash, "__setattr__": _setattr, "__delattr__": _delattr}
    elif "__hash__" not in cls.__dict__:
        methods["__hash__"] = None  # mutable and comparable: unhashable, as dataclasses do
    for method, function in methods.items():
        if method not in cls.__dict__:  # a method the class writes itself wins
            setattr(cls, method, function)
    names = tuple(name for name, _ in fields)
    setattr(cls, "__record_fields__", names)  # noqa: B010 - for replace() and _values
    setattr(cls, "__record_shown__", tuple(n for n, spec in fields if spec.repr))  # noqa: B010
    setattr(cls, "__match_args__", () if kw_only else names)  # noqa: B010
    return cls


def _fields(cls: type, kw_only: bool) -> list[tuple[str, Field]]:
    """The fields in order, from the class's own annotations; a `field()` class attribute is
    replaced by its plain default, or removed, as dataclasses do."""
    fields = []
    defaulted = False
    for name, annotation in vars(cls).get("__annotations__", {}).items():
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        if text.startswith(("ClassVar", "typing.ClassVar")):
            continue
        if text.startswith(("InitVar", "dataclasses.InitVar")):
            raise TypeError(f"{cls.__name__}.{name}: records have no InitVar")
        value = vars(cls).get(name, _MISSING)
        spec = value if isinstance(value, Field) else Field(value, _MISSING, True)
        if isinstance(spec.default, (list, dict, set)):
            raise TypeError(f"{cls.__name__}.{name}: a mutable default needs default_factory")
        required = spec.default is _MISSING and spec.default_factory is _MISSING
        if required and defaulted and not kw_only:
            raise TypeError(f"{cls.__name__}: non-default field {name!r} follows a default")
        defaulted = defaulted or not required
        if isinstance(value, Field):
            if spec.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
        fields.append((name, spec))
    return fields


def _init(
    cls: type, fields: list[tuple[str, Field]], *, frozen: bool, kw_only: bool
) -> Callable[..., None]:
    """The one compiled method: its signature is the constructor's, for callers and errors."""
    scope: dict[str, Any] = {"_set": object.__setattr__, "_FACTORY": _MISSING}
    params = ["*"] if kw_only and fields else []
    body = []
    for name, spec in fields:
        if spec.default_factory is not _MISSING:
            scope[f"_factory_{name}"] = spec.default_factory
            params.append(f"{name}=_FACTORY")
            body.append(f" if {name} is _FACTORY: {name} = _factory_{name}()")
        elif spec.default is not _MISSING:
            scope[f"_default_{name}"] = spec.default
            params.append(f"{name}=_default_{name}")
        else:
            params.append(name)
    assign = " _set(self, {0!r}, {0})" if frozen else " self.{0} = {0}"
    body += [assign.format(name) for name, _ in fields] or [" pass"]
    source = "\n".join([f"def __init__(self, {', '.join(params)}) -> None:", *body])
    exec(source, scope)  # noqa: S102 - text built from the class's identifiers only
    init: Callable[..., None] = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _values(self: Any) -> tuple[Any, ...]:
    return tuple([getattr(self, name) for name in type(self).__record_fields__])


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self).__record_shown__)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: object) -> Any:  # bool, or NotImplemented
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _lt(self: Any, other: object) -> Any:  # bool, or NotImplemented
    return _values(self) < _values(other) if other.__class__ is self.__class__ else NotImplemented


def _le(self: Any, other: object) -> Any:  # bool, or NotImplemented
    return _values(self) <= _values(other) if other.__class__ is self.__class__ else NotImplemented


def _gt(self: Any, other: object) -> Any:  # bool, or NotImplemented
    return _values(self) > _values(other) if other.__class__ is self.__class__ else NotImplemented


def _ge(self: Any, other: object) -> Any:  # bool, or NotImplemented
    return _values(self) >= _values(other) if other.__class__ is self.__class__ else NotImplemented


def _hash(self: Any) -> int:
    return hash(_values(self))


def _setattr(self: Any, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")
