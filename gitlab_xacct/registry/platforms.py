"""Choosing platforms out of a multi-platform image (XACCT_PLATFORMS)."""

from __future__ import annotations

import hashlib
import json

from gitlab_xacct.config.engine import Platform
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.image import ImageIndex, SourceImage

CONFIG_LIMIT = 32 * 1024 * 1024  # an image config is small; a bigger one is not a config


def filter_index(index: ImageIndex, wanted: tuple[Platform, ...], origin: str) -> ImageIndex:
    """The index with only the wanted platforms; unchanged (same digest) when all are kept.

    The kept descriptors are copied as the source wrote them; only the list shrinks, so the
    new index is re-serialised and gets a new digest.
    """
    doc = json.loads(index.manifest)
    descriptors = [d for d in doc.get("manifests", []) if isinstance(d, dict)]
    kept = [d for d in descriptors if any(p.matches(d.get("platform")) for p in wanted)]
    if not kept:
        available = sorted({_describe(d.get("platform")) for d in descriptors})
        raise ConfigError(
            f"{origin}: the image has none of {', '.join(map(str, wanted))}; it has "
            f"{', '.join(available) or 'no platform fields'}"
        )
    if len(kept) == len(descriptors):
        return index
    digests = {d.get("digest") for d in kept}
    raw = json.dumps({**doc, "manifests": kept}, separators=(",", ":")).encode()
    return ImageIndex(
        manifest=raw,
        media_type=index.media_type,
        digest="sha256:" + hashlib.sha256(raw).hexdigest(),
        children=tuple(c for c in index.children if c.digest in digests),
    )


def _describe(platform: object) -> str:
    if not isinstance(platform, dict):
        return "unknown"
    variant = platform.get("variant")
    return f"{platform.get('os')}/{platform.get('architecture')}" + (
        f"/{variant}" if variant else ""
    )


def choose_platforms(image: SourceImage, wanted: tuple[Platform, ...], origin: str) -> SourceImage:
    """XACCT_PLATFORMS applied: an index filtered; a single-platform image must be one asked
    for, or the job is mistaken. Nothing asked: the image as it is."""
    if not wanted:
        return image
    if isinstance(image, ImageIndex):
        return filter_index(image, wanted, origin)
    with image.config.open() as stream:
        config = json.loads(stream.read(CONFIG_LIMIT))
    found = {"os": config.get("os"), "architecture": config.get("architecture")}
    if config.get("variant"):
        found["variant"] = config["variant"]
    if not any(p.matches(found) for p in wanted):
        raise ConfigError(
            f"{origin}: the image is {_describe(found)}, not one of {', '.join(map(str, wanted))}"
        )
    return image
