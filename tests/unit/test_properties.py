"""Property-based tests: the parsers of what users type never crash; what they accept is valid.

For any input, the image reference parser, the source (transport) parser, the role session name
sanitiser and the settings parser either return a valid value or raise ConfigError (exit 2)
with one line that names the variable or flag; a parsed value round-trips through its text form.
Examples found by these properties are kept below as explicit regression tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gitlab_xacct.config import validate
from gitlab_xacct.config.options import KNOWN_VARIABLES
from gitlab_xacct.config.push import PushSettings
from gitlab_xacct.config.reference import ImageReference, parse_reference
from gitlab_xacct.config.source import SourceSpec, parse_source
from gitlab_xacct.errors import ConfigError

T = TypeVar("T")

# AWS's RoleSessionName: [\w+=,.@-]{2,64}, where \w is ASCII (letters, digits, underscore).
AWS_SESSION_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{2,64}")
# The distribution spec's grammar, ASCII only.
HOST = re.compile(r"[a-z0-9.-]+(?::[0-9]{1,5})?|\[[0-9a-f:.]+\](?::[0-9]{1,5})?")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
NAMES_AN_INPUT = re.compile(r"\b(?:XACCT|CI|AWS)_[A-Z_]+\b|--[a-z][a-z-]+")
SENTINEL = "sentinel-ExtId-5e1f9a02c7"

PARSERS = settings(max_examples=300, deadline=None)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# What users paste: ASCII, look-alikes (digits and letters of other scripts), blanks, a NUL.
tricky = st.sampled_from(
    ["\u0661", "\u00b2", "\u00e9", "\u212a", "\u0131", " ", "\t", "\n", "\x00"]
)
words = st.text(
    alphabet=st.one_of(st.characters(categories=("L", "N")), st.sampled_from("abc019_.-")),
    min_size=1,
    max_size=10,
)
numbers = st.text(alphabet=st.characters(categories=("Nd", "No")), min_size=1, max_size=6)
piece = st.one_of(
    st.text(alphabet="abcxyz019_.-:/@", min_size=0, max_size=12),
    st.text(max_size=6),
    tricky,
    words,
    numbers,
)
pieces = st.lists(piece, max_size=6).map("".join)


def attempt(call: Callable[[], T]) -> T | ConfigError:
    """The parsed value, or the ConfigError it was refused with (anything else propagates)."""
    try:
        return call()
    except ConfigError as exc:
        return exc


def _reference_text() -> st.SearchStrategy[str]:
    host = st.sampled_from(["r.example.org", "localhost:5000", "127.0.0.1:5000", "docker.io",
                            "[::1]:5000", "R.Example.ORG"])  # fmt: skip
    repository = st.sampled_from(["team/app", "app", "a/b/c", "a__b", "a--b"])
    tag = st.one_of(st.sampled_from(["v1", "latest", "_x", "1.0-rc"]), words, pieces)
    suffix = st.one_of(
        st.just(""),
        st.builds(lambda t: f":{t}", tag),
        st.builds(lambda d: f"@{d}", st.one_of(st.just("sha256:" + "a" * 64), pieces)),
    )
    structured = st.builds(
        lambda h, r, s, noise: f"docker://{h}/{r}{s}{noise}",
        st.one_of(host, pieces, st.builds(lambda n: f"r.example.org:{n}", numbers)),
        st.one_of(repository, pieces),
        suffix,
        st.one_of(st.just(""), pieces),
    )
    return st.one_of(structured, st.text(max_size=60), st.builds(lambda s: "docker://" + s, pieces))


def _check_reference(ref: ImageReference) -> None:
    assert HOST.fullmatch(ref.host), ref
    assert REPOSITORY.fullmatch(ref.repository), ref
    assert ref.tag is None or TAG.fullmatch(ref.tag), ref
    assert ref.digest is None or DIGEST.fullmatch(ref.digest), ref
    assert not (ref.tag and ref.digest)
    assert parse_reference(str(ref)) == ref  # round trip


@PARSERS
@given(_reference_text())
@example("docker://r.example.org/app:\u00e9")  # a non-ASCII tag was accepted
@example("docker://r.example.org:\u0661\u0662/app")  # so were non-ASCII port digits
def test_reference_parser_accepts_only_valid_references(text: str) -> None:
    ref = attempt(lambda: parse_reference(text))
    if isinstance(ref, ConfigError):
        assert "\n" not in str(ref)
        return
    _check_reference(ref)


def _source_text() -> st.SearchStrategy[str]:
    transport = st.sampled_from(["oci", "oci-archive", "docker-archive", "docker", "dir", ""])
    refs = st.one_of(st.just("@1"), st.builds(lambda n: f"@{n}", numbers))
    return st.one_of(
        st.builds(lambda t, rest: f"{t}:{rest}", transport, pieces),
        st.builds(lambda t, p, r: f"{t}:{p}:{r}", transport, pieces, st.one_of(pieces, refs)),
        _reference_text(),
        st.text(max_size=40),
    )  # fmt: skip


@PARSERS
@given(_source_text())
@example("oci:layout:@\u00b2")  # "@²" passed as an image number, and int() failed later
def test_source_parser_round_trips_or_refuses(text: str) -> None:
    spec = attempt(lambda: parse_source(text))
    if isinstance(spec, ConfigError):
        assert "\n" not in str(spec)
        return
    assert isinstance(spec, SourceSpec)
    assert parse_source(str(spec)) == spec
    if spec.transport == "docker":
        _check_reference(spec.image)
        return
    assert str(spec.path) != ""
    if spec.ref is not None:
        assert spec.ref != ""
        assert not any(c.isspace() for c in spec.ref)
        if spec.ref.startswith("@"):
            assert re.fullmatch(r"@[0-9]+", spec.ref), spec.ref
            int(spec.ref[1:])


@PARSERS
@given(st.lists(st.one_of(st.text(max_size=80), pieces), max_size=4))
@example(["\u00e9"])  # kept as is: AWS refuses a non-ASCII session name
@example(["4242", "1001", "9" * 100])
def test_session_name_sanitiser_always_gives_what_aws_accepts(ids: list[str]) -> None:
    name = validate.derive_session_name(*ids)
    assert AWS_SESSION_NAME.fullmatch(name), name
    if ids and ids[-1] and ids[-1].isascii() and ids[-1].isalnum() and len(ids[-1]) < 40:
        assert name.endswith(ids[-1])  # the job id, most specific, survives the cut


@PARSERS
@given(st.one_of(st.text(max_size=70), pieces))
@example("\u00e9\u00e9")  # accepted though AWS refuses it
def test_an_explicit_session_name_is_valid_or_refused(value: str) -> None:
    name = attempt(lambda: validate.session_name(value, "XACCT_SESSION_NAME"))
    if isinstance(name, ConfigError):
        assert str(name).startswith("XACCT_SESSION_NAME: ")
        return
    assert AWS_SESSION_NAME.fullmatch(name)


# ---- the settings parser ----------------------------------------------------------------------

ROLE = "arn:aws:iam::222222222222:role/r"
GOOD: dict[str, list[str]] = {
    "XACCT_ROLE_ARN": [ROLE, "arn:aws-cn:iam::222222222222:role/p/r"],
    "XACCT_EXTERNAL_ID": [SENTINEL],
    "XACCT_REGION": ["eu-west-1", "cn-north-1"],
    "XACCT_REPOSITORY": ["team/app"],
    "XACCT_SOURCE": ["oci:layout:latest", "docker-archive:x.tar", "docker://r.example.org/a:b"],
    "XACCT_TAGS": ["v1, latest", "v1"],
    "XACCT_DESTINATIONS": [f"{ROLE}|eu-west-1|team/app", f"{ROLE}|eu-west-1|a|{SENTINEL}"],
    "XACCT_DOTENV": ["report.env"],
    "XACCT_PLATFORMS": ["linux/amd64", "linux/arm64/v8"],
    "XACCT_PARALLELISM": ["4"],
    "XACCT_DURATION_SECONDS": ["3600"],
    "XACCT_SESSION_NAME": ["job-1"],
    "XACCT_ROLE_CHAIN": [ROLE, f"{ROLE}|{SENTINEL}"],
    "XACCT_ALLOWED_ACCOUNT_IDS": ["222222222222"],
    "XACCT_REGISTRY_ENDPOINT": ["https://r.example.org", "http://127.0.0.1:5000"],
    "XACCT_SESSION_TAGS": ["true", "false"],
    "XACCT_CREATE_REPOSITORY": ["true"],
    "XACCT_SKIP_EXISTING_TAGS": ["false"],
    "XACCT_DEBUG": ["false"],
    "CI_PROJECT_ID": ["4242"],
    "CI_PIPELINE_ID": ["1001"],
    "CI_JOB_ID": ["90001"],
    "CI_PROJECT_PATH": ["team/app", "Team/App"],
    "CI_COMMIT_SHORT_SHA": ["a1b2c3d4"],
    "AWS_REGION": ["eu-west-1"],
}
PUSH_VARIABLES = sorted({o.env for o in PushSettings.OPTIONS if o.env} | set(GOOD))


def _value(name: str) -> st.SearchStrategy[str]:
    good = st.sampled_from(GOOD.get(name, ["x"]))
    return st.one_of(
        good,
        pieces,
        st.text(max_size=30),
        numbers,
        st.builds(lambda g, p: g + p, good, pieces),  # a valid value with something pasted after
        st.builds(lambda p, g: p + g, pieces, good),
    )


@st.composite
def push_env(draw: st.DrawFn) -> dict[str, str]:
    optional = ("XACCT_DESTINATIONS", "XACCT_ROLE_CHAIN", "XACCT_REGISTRY_ENDPOINT")
    base = {n: draw(st.sampled_from(v)) for n, v in GOOD.items() if n not in optional}
    changed = draw(st.lists(st.sampled_from(PUSH_VARIABLES), max_size=4, unique=True))
    for name in changed:
        base[name] = draw(_value(name))
    for name in draw(st.lists(st.sampled_from(PUSH_VARIABLES), max_size=2, unique=True)):
        base.pop(name, None)
    if draw(st.booleans()):  # a misspelt variable now and then
        typo = draw(st.sampled_from(["XACCT_ROLEARN", "XACCT_TAG", "XACCT_REGON", "XACCT_X"]))
        base[typo] = draw(pieces)
    return base


@SETTINGS
@given(push_env())
@example({"XACCT_DURATION_SECONDS": "\u00b2", **{k: v[0] for k, v in GOOD.items()}})
@example({"XACCT_PARALLELISM": "\u00b2", **{k: v[0] for k, v in GOOD.items()}})
@example({"XACCT_DOTENV": "a" * 300, **{k: v[0] for k, v in GOOD.items() if k != "XACCT_DOTENV"}})
def test_settings_parse_or_name_what_to_fix(env: dict[str, str]) -> None:
    parsed = attempt(lambda: PushSettings.from_env(env, {}))
    if isinstance(parsed, ConfigError):
        message = str(parsed)
        assert "\n" not in message, message
        assert NAMES_AN_INPUT.search(message), message
        assert SENTINEL not in message  # the External ID is never echoed
        return
    for destination in parsed.destinations:
        identity = destination.identity
        assert AWS_SESSION_NAME.fullmatch(identity.session_name), identity.session_name
        assert re.fullmatch(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}", identity.region)
        assert all(re.fullmatch(r"[0-9]{12}", h.role.account) for h in identity.hops)
        assert 900 <= identity.duration_seconds <= 43200
        assert 2 <= len(destination.repository) <= 256
    assert all(TAG.fullmatch(tag) for tag in parsed.tags), parsed.tags
    assert 1 <= parsed.engine.parallelism <= 32
    assert SENTINEL not in repr(parsed)  # held as a Secret


def test_known_variables_cover_the_generated_ones() -> None:
    """The generator draws from real variable names, so the typos above are the only unknowns."""
    assert {n for n in PUSH_VARIABLES if n.startswith("XACCT_")} <= KNOWN_VARIABLES


# ---- what the properties found, kept as plain regression tests ----------------------------------


@pytest.mark.parametrize(
    ("call", "origin"),
    [
        (lambda: parse_reference("docker://r.example.org/app:\u00e9"), ""),
        (lambda: parse_reference("docker://r.example.org:\u0661\u0662/app"), ""),
        (lambda: parse_source("oci:layout:@\u00b2"), ""),
        (lambda: validate.session_name("\u00e9\u00e9", "XACCT_SESSION_NAME"), "XACCT_SESSION_NAME"),
        (lambda: validate.duration("\u00b2", "XACCT_DURATION_SECONDS"), "XACCT_DURATION_SECONDS"),
        (lambda: validate.region("eu-west-\u0661", "XACCT_REGION"), "XACCT_REGION"),
        (lambda: validate.tag("v\u00e9", "XACCT_TAGS"), "XACCT_TAGS"),
        (lambda: validate.account_ids("\u0661" * 12, "XACCT_ALLOWED_ACCOUNT_IDS"), "XACCT_ALLOWED"),
    ],
)  # fmt: skip
def test_found_non_ascii_input_is_refused(call: object, origin: str) -> None:
    assert callable(call)
    with pytest.raises(ConfigError) as caught:
        call()
    assert str(caught.value).startswith(origin)


def test_found_session_name_from_non_ascii_ids_is_ascii() -> None:
    assert (
        validate.derive_session_name("\u00e9t\u00e9", "1001", "90001")
        == "gitlab-xacct--t--1001-90001"
    )


def test_found_overlong_report_path_is_a_config_error(tmp_path: Path) -> None:
    env = {k: v[0] for k, v in GOOD.items() if k != "XACCT_DOTENV"}
    with pytest.raises(ConfigError, match=r"^XACCT_DOTENV: "):
        PushSettings.from_env({**env, "XACCT_DOTENV": str(tmp_path / ("a" * 300))}, {})
