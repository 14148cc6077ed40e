"""Read an image out of an OCI image layout (a directory, or the files of an archive).

Manifests are handed on byte for byte as stored, so the digest pushed is the digest built.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.image import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    ImageIndex,
    ImageManifest,
    SourceImage,
)
from gitlab_xacct.registry.selection import Listing, select_image
from gitlab_xacct.registry.tarindex import EXPORT_AGAIN, Files, Section

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # what registries accept for a manifest (distribution, ECR)
TOO_BIG = "registries refuse larger ones; make it smaller (fewer layers or annotations)"
REF_NAME = "org.opencontainers.image.ref.name"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

JsonObject = dict[str, object]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(value: object) -> bool:
    """`sha256:` and 64 lowercase hex digits: the only form accepted, so also a safe file name."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def check_digest(value: object, label: str, where: str) -> str:
    if not isinstance(value, str) or not is_digest(value):
        raise ConfigError(
            f"{label}: {where} has digest {value!r}; only sha256: with 64 lowercase hex digits "
            f"is supported: {EXPORT_AGAIN}"
        )
    return value


def blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def read_small(files: Files, name: str, what: str, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """The whole of a small file (JSON metadata), refusing anything over `limit`."""
    return read_member(files, name, what, limit)[1]


def read_member(files: Files, name: str, what: str, limit: int) -> tuple[Section, bytes]:
    section = files.get(name)
    if section is None:
        raise ConfigError(f"{files.label}: {what} is missing; {EXPORT_AGAIN}")
    if section.size > limit:
        raise ConfigError(
            f"{files.label}: {what} is {section.size} bytes, over the {limit // 1048576} MiB "
            f"limit; {TOO_BIG}"
        )
    try:
        return section, section.read_all()
    except OSError as exc:
        raise ConfigError(f"{files.label}: cannot read {what}: {exc}") from exc


def parse_json(data: bytes, label: str, what: str) -> object:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ConfigError(f"{label}: {what} is not valid JSON ({exc}); {EXPORT_AGAIN}") from exc


def parse_object(data: bytes, label: str, what: str) -> JsonObject:
    doc = parse_json(data, label, what)
    if not isinstance(doc, dict):
        raise ConfigError(f"{label}: {what} is not a JSON object; {EXPORT_AGAIN}")
    return doc


def get_list(doc: Mapping[str, object], key: str, label: str, what: str) -> list[object]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise ConfigError(f"{label}: {what} has no {key!r} list; {EXPORT_AGAIN}")
    return value


@dataclass(frozen=True, slots=True)
class Descriptor:
    digest: str
    size: int
    media_type: str | None
    annotations: Mapping[str, str] = field(default_factory=dict)


def parse_descriptor(value: object, label: str, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise ConfigError(f"{label}: {where} is not a descriptor object; {EXPORT_AGAIN}")
    digest = check_digest(value.get("digest"), label, where)
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ConfigError(f"{label}: {where} ({digest}) has no valid size; {EXPORT_AGAIN}")
    media_type = value.get("mediaType")
    if media_type is not None and not isinstance(media_type, str):
        raise ConfigError(
            f"{label}: {where} ({digest}) has a mediaType that is not a string; {EXPORT_AGAIN}"
        )
    raw = value.get("annotations")
    annotations = (
        {k: v for k, v in raw.items() if isinstance(v, str)} if isinstance(raw, dict) else {}
    )
    return Descriptor(digest, size, media_type, annotations)


def media_type_of(doc: Mapping[str, object], hint: str | None, label: str, digest: str) -> str:
    """The manifest's own `mediaType`, else its descriptor's (umoci and skopeo omit the field)."""
    own = doc.get("mediaType")
    if own is not None and not isinstance(own, str):
        raise ConfigError(
            f"{label}: manifest {digest} has a mediaType that is not a string; {EXPORT_AGAIN}"
        )
    media_type = own or hint or (OCI_INDEX if "manifests" in doc else OCI_MANIFEST)
    if media_type not in MANIFEST_TYPES | INDEX_TYPES:
        raise ConfigError(
            f"{label}: manifest {digest} has unsupported media type {media_type}; convert it to "
            "OCI (skopeo copy --format oci)"
        )
    if doc.get("schemaVersion") != 2:
        raise ConfigError(
            f"{label}: manifest {digest} is not schemaVersion 2; convert it to OCI (skopeo copy "
            "--format oci)"
        )
    return media_type


def read_manifest(files: Files, desc: Descriptor) -> bytes:
    """A manifest or index blob, checked against its descriptor's size and digest."""
    what = f"manifest {desc.digest}"
    if desc.size > MAX_MANIFEST_BYTES:
        raise ConfigError(
            f"{files.label}: {what} is {desc.size} bytes, over the "
            f"{MAX_MANIFEST_BYTES // 1048576} MiB limit; {TOO_BIG}"
        )
    raw = read_small(files, blob_name(desc.digest), what)
    if len(raw) != desc.size or sha256_digest(raw) != desc.digest:
        raise ConfigError(
            f"{files.label}: {what} does not match its digest or size (corrupt); {EXPORT_AGAIN}"
        )
    return raw


def blob(files: Files, desc: Descriptor, manifest_digest: str) -> Blob:
    where = f"blob {desc.digest} (in manifest {manifest_digest})"
    if desc.media_type is None:
        raise ConfigError(f"{files.label}: {where} has no mediaType; {EXPORT_AGAIN}")
    section = files.get(blob_name(desc.digest))
    if section is None:
        raise ConfigError(f"{files.label}: {where} is missing; {EXPORT_AGAIN}")
    if section.size != desc.size:
        raise ConfigError(
            f"{files.label}: {where} is {section.size} bytes, the manifest says {desc.size}; "
            f"{EXPORT_AGAIN}"
        )
    return Blob(digest=desc.digest, size=desc.size, media_type=desc.media_type, open=section.open)


def manifest_descriptors(
    doc: Mapping[str, object], digest: str, media_type: str, label: str
) -> tuple[Descriptor, list[Descriptor]]:
    """The config and layer descriptors of an image manifest, whatever holds its blobs."""
    if media_type not in MANIFEST_TYPES:
        raise ConfigError(
            f"{label}: {digest} is {media_type}, expected an image manifest; {EXPORT_AGAIN}"
        )
    what = f"manifest {digest}"
    config = parse_descriptor(doc.get("config"), label, f"the config of {what}")
    layers = [
        parse_descriptor(item, label, f"layer {number} of {what}")
        for number, item in enumerate(get_list(doc, "layers", label, what))
    ]
    return config, layers


def build_manifest(
    files: Files, raw: bytes, doc: JsonObject, digest: str, media_type: str
) -> ImageManifest:
    """An ImageManifest over `raw`, each blob it names present with the size it claims."""
    config, layers = manifest_descriptors(doc, digest, media_type, files.label)
    return ImageManifest(
        manifest=raw,
        media_type=media_type,
        digest=digest,
        config=blob(files, config, digest),
        layers=tuple(blob(files, layer, digest) for layer in layers),
    )


def read_layout(files: Files, ref: str | None) -> SourceImage:
    """The image `ref` names in the layout (`@N` picks the Nth entry of index.json)."""
    label = files.label
    layout = parse_object(read_small(files, "oci-layout", "oci-layout"), label, "oci-layout")
    version = layout.get("imageLayoutVersion")
    if not isinstance(version, str) or not version.startswith("1."):
        raise ConfigError(
            f"{label}: oci-layout has unsupported imageLayoutVersion {version!r} (1.x is read); "
            f"{EXPORT_AGAIN}"
        )
    index = parse_object(read_small(files, "index.json", "index.json"), label, "index.json")
    descriptors = [
        parse_descriptor(item, label, f"entry {number} of index.json")
        for number, item in enumerate(get_list(index, "manifests", label, "index.json"))
    ]
    return resolve(files, _select(descriptors, ref, label))


def resolve(files: Files, desc: Descriptor) -> SourceImage:
    """The manifest `desc` points at; an index comes with each child manifest resolved."""
    label = files.label
    raw = read_manifest(files, desc)
    doc = parse_object(raw, label, f"manifest {desc.digest}")
    media_type = media_type_of(doc, desc.media_type, label, desc.digest)
    if media_type in MANIFEST_TYPES:
        return build_manifest(files, raw, doc, desc.digest, media_type)
    children: list[ImageManifest] = []
    what = f"index {desc.digest}"
    for number, item in enumerate(get_list(doc, "manifests", label, what)):
        child = parse_descriptor(item, label, f"entry {number} of {what}")
        # Only one level: an index whose children are indexes (or itself) is refused, which
        # also bounds the walk and rules out loops.
        if child.media_type in INDEX_TYPES:
            raise _nested(label, what, child.digest)
        child_raw = read_manifest(files, child)
        child_doc = parse_object(child_raw, label, f"manifest {child.digest}")
        child_type = media_type_of(child_doc, child.media_type, label, child.digest)
        if child_type in INDEX_TYPES:
            raise _nested(label, what, child.digest)
        children.append(build_manifest(files, child_raw, child_doc, child.digest, child_type))
    if not children:
        raise ConfigError(f"{label}: {what} lists no manifests; {EXPORT_AGAIN}")
    return ImageIndex(
        manifest=raw, media_type=media_type, digest=desc.digest, children=tuple(children)
    )


def _nested(label: str, what: str, child: str) -> ConfigError:
    return ConfigError(
        f"{label}: {what} nests another index ({child}); one level is supported: name the inner "
        "index in index.json and choose it with :REF"
    )


_LISTING = Listing(file="index.json", hint=":REF", verb="named", separator=", ")


def _select(descriptors: list[Descriptor], ref: str | None, label: str) -> Descriptor:
    return select_image(
        descriptors,
        ref,
        label=label,
        listing=_LISTING,
        names=[d.annotations.get(REF_NAME) or f"@{n} (unnamed)" for n, d in enumerate(descriptors)],
        matches=lambda descriptor: descriptor.annotations.get(REF_NAME) == ref,
    )
