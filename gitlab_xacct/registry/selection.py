"""Choosing one image among those an index.json or manifest.json lists, by name or by @N."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from gitlab_xacct.errors import ConfigError

T = TypeVar("T")
MAX_LISTED = 20


@dataclass(frozen=True, slots=True)
class Listing:
    """How one kind of source lists its images, for the error messages."""

    file: str  # "index.json" or "manifest.json"
    hint: str  # how to name an image in the source spec
    verb: str  # "named" or "tagged"
    separator: str  # between the names shown


def select_image(
    items: Sequence[T],
    ref: str | None,
    *,
    label: str,
    listing: Listing,
    names: Sequence[str],
    matches: Callable[[T], bool],
) -> T:
    """The single image, the @N-th, or the one `matches` finds; anything else names the choices."""
    if not items:
        raise ConfigError(f"{label}: {listing.file} lists no images")
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    available = listing.separator.join(names[:MAX_LISTED]) + more
    if ref is None:
        if len(items) == 1:
            return items[0]
        raise ConfigError(
            f"{label}: holds {len(items)} images; choose one with {listing.hint}, one of "
            f"{available}"
        )
    if ref.startswith("@") and ref[1:].isdigit():
        number = int(ref[1:])
        if number >= len(items):
            raise ConfigError(
                f"{label}: has no image {ref}; {listing.file} lists {len(items)} ({available})"
            )
        return items[number]
    found = [number for number, item in enumerate(items) if matches(item)]
    if not found:
        raise ConfigError(f"{label}: has no image {listing.verb} {ref!r}; available: {available}")
    if len(found) > 1:
        choices = ", ".join(f"@{n}" for n in found)
        raise ConfigError(
            f"{label}: several images are {listing.verb} {ref!r}; choose one of {choices}"
        )
    return items[found[0]]
