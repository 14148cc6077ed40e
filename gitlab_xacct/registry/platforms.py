"""Choosing platforms out of a multi-platform image (XACCT_PLATFORMS)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.image import ImageIndex, SourceImage

CONFIG_LIMIT = 32 * 1024 * 1024  # an image config is small; a bigger one is not a config

# GOOS/GOARCH values the OCI image spec points to; a typo gets a "did you mean".
KNOWN_OS = (
    "linux",
    "windows",
    "darwin",
    "freebsd",
    "netbsd",
    "openbsd",
    "solaris",
    "illumos",
    "aix",
    "android",
    "ios",
    "js",
    "wasip1",
    "plan9",
    "dragonfly",
)
KNOWN_ARCH = ("amd64", "arm64", "arm", "386", "ppc64le", "ppc64", "s390x", "riscv64", "mips64le",
              "mips64", "mipsle", "mips", "loong64", "wasm")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")

    def matches(self, descriptor_platform: object) -> bool:
        if not isinstance(descriptor_platform, dict):
            return False
        if (descriptor_platform.get("os"), descriptor_platform.get("architecture")) != (
            self.os,
            self.architecture,
        ):
            return False
        return self.variant is None or descriptor_platform.get("variant") == self.variant


def parse_platform(value: str, origin: str) -> Platform:
    parts = value.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigError(f"{origin}: {value!r} is not a platform; write os/arch[/variant], "
                          "for example linux/amd64 or linux/arm/v7")  # fmt: skip
    os_name, arch = parts[0], parts[1]
    for given, known, what in ((os_name, KNOWN_OS, "operating system"),
                               (arch, KNOWN_ARCH, "architecture")):  # fmt: skip
        if given not in known:
            import difflib  # only for a mistake: not worth its import on every start

            close = difflib.get_close_matches(given, known, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
            raise ConfigError(f"{origin}: {value!r} names an unknown {what} {given!r}; {hint}")
    return Platform(os_name, arch, parts[2] if len(parts) == 3 else None)


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
