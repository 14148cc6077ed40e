"""gitlab_xacct.records: the value classes behave as the dataclasses they replace."""

from __future__ import annotations

import copy
import threading
from typing import ClassVar

import pytest

from gitlab_xacct.records import FrozenInstanceError, field, record, replace


@record(frozen=True, kw_only=True)
class Login:
    user: str
    password: str = field(default="", repr=False)
    scopes: tuple[str, ...] = ()
    seen: list[str] = field(default_factory=list)
    LIMIT: ClassVar[int] = 3


@record(frozen=True)
class Point:
    x: int
    y: int = 0


@record
class Counter:
    count: int
    lock: threading.Lock = field(default_factory=threading.Lock)


@record(frozen=True, order=True)
class Version:
    major: int
    minor: int = 0


def test_constructor_takes_fields_in_order_with_defaults() -> None:
    assert (Point(1).x, Point(1).y, Point(1, 2).y, Point(y=5, x=4).x) == (1, 0, 2, 4)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'x'"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        Point(1, z=2)  # type: ignore[call-arg]


def test_keyword_only_records_refuse_positional_arguments() -> None:
    with pytest.raises(TypeError, match="positional"):
        Login("u")  # type: ignore[call-arg]
    assert Login(user="u").scopes == ()


def test_default_factory_makes_a_new_value_for_each_instance() -> None:
    one, two = Login(user="a"), Login(user="b")
    one.seen.append("x")
    assert two.seen == []
    assert Counter(1).lock is not Counter(1).lock
    assert Login.LIMIT == 3
    assert "seen" not in vars(Login)  # the field() marker does not stay on the class


def test_repr_leaves_out_hidden_fields() -> None:
    text = repr(Login(user="u", password="sentinel-secret"))
    assert text == "Login(user='u', scopes=(), seen=[])"
    assert "sentinel" not in text


def test_frozen_records_refuse_assignment_and_deletion() -> None:
    point = Point(1)
    with pytest.raises(FrozenInstanceError, match="'x'"):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del point.x
    assert isinstance(FrozenInstanceError(), AttributeError)


def test_equality_and_hash_follow_the_fields() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(2, 1)
    assert Point(1, 2) != (1, 2)  # type: ignore[comparison-overlap]
    assert len({Point(1, 2), Point(1, 2), Point(3)}) == 2
    with pytest.raises(TypeError, match="unhashable"):
        hash(Counter(1))
    counter = Counter(1)
    counter.count += 1
    assert counter.count == 2


def test_order_compares_fields_as_a_tuple() -> None:
    assert sorted([Version(2), Version(1, 5), Version(1)]) == [
        Version(1),
        Version(1, 5),
        Version(2),
    ]
    with pytest.raises(TypeError):
        assert Version(1) < Point(1)  # type: ignore[operator]


def test_replace_copies_with_changes_and_refuses_unknown_fields() -> None:
    login = Login(user="u", password="p", scopes=("pull",))
    changed = replace(login, scopes=("push",))
    assert (changed.user, changed.password, changed.scopes) == ("u", "p", ("push",))
    assert login.scopes == ("pull",)
    with pytest.raises(TypeError, match="no field 'nope'"):
        replace(login, nope=1)


def test_copy_and_match_args_work_as_for_dataclasses() -> None:
    point = copy.copy(Point(1, 2))
    assert point == Point(1, 2)
    match point:
        case Point(x, y):
            assert (x, y) == (1, 2)
    assert Login.__match_args__ == ()


def test_what_records_do_not_support_is_refused() -> None:
    with pytest.raises(TypeError, match="follows a default"):

        @record
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]

    with pytest.raises(TypeError, match="default_factory"):

        @record
        class Mutable:
            a: list[int] = []  # noqa: RUF012

    with pytest.raises(TypeError, match="inherit"):

        @record
        class Child(Point):  # type: ignore[misc]
            z: int = 0

    with pytest.raises(TypeError, match="__post_init__"):

        @record
        class Hooked:
            a: int

            def __post_init__(self) -> None:
                pass
