"""Read an image out of a `docker save` archive, classic or Docker 25+ OCI-in-tar.

Docker 25+ archives carry an OCI manifest, pushed byte for byte when it agrees with
manifest.json. Classic archives carry none, and neither do some 25.0.0 archives whose OCI manifest
has no layers or has them out of order (moby#47065, moby#47150): for those an OCI manifest is
built from manifest.json and the config, whose bytes are pushed unchanged so the image ID stays.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import dataclass

from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.image import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    Blob,
    ImageManifest,
)
from gitlab_xacct.registry.oci_layout import (
    MAX_MANIFEST_BYTES,
    Descriptor,
    JsonObject,
    blob_name,
    build_manifest,
    check_digest,
    get_list,
    is_digest,
    media_type_of,
    parse_descriptor,
    parse_json,
    parse_object,
    read_manifest,
    read_member,
    read_small,
    sha256_digest,
)
from gitlab_xacct.registry.selection import Listing, select_image
from gitlab_xacct.registry.tarindex import EXPORT_AGAIN, Files, Section

MAX_CONFIG_BYTES = 32 * 1024 * 1024
_INDEX_DEPTH = 2  # index.json -> (containerd-store) image index -> manifest


@dataclass(frozen=True, slots=True)
class _Entry:
    config: str
    repo_tags: tuple[str, ...]
    layers: tuple[str, ...]


def read_docker_archive(files: Files, ref: str | None) -> ImageManifest:
    """The image `ref` (`name:tag` from RepoTags, or `@N`) names in manifest.json."""
    label = files.label
    if files.get("manifest.json") is None:
        raise ConfigError(
            f"{label}: manifest.json is missing (is this a `docker save` archive?); an OCI "
            f"archive is oci-archive:{label}"
        )
    raw = read_small(files, "manifest.json", "manifest.json")
    doc = parse_json(raw, label, "manifest.json")
    if not isinstance(doc, list):
        raise ConfigError(f"{label}: manifest.json is not a JSON list; {EXPORT_AGAIN}")
    entries = [_entry(item, label, number) for number, item in enumerate(doc)]
    entry = _select(entries, ref, label)
    if files.get("index.json") is not None:
        found = _stored_oci_manifest(files, entry)
        if found is not None:
            return found
    return _synthesise(files, entry)


def normalise_tag(ref: str) -> str:
    """`ref` in full (`docker.io/library/app:latest`), as Docker and skopeo compare RepoTags."""
    name, tag = ref, "latest"
    head, sep, last = ref.rpartition(":")
    if sep and "/" not in last:
        name, tag = head, last
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = "docker.io", name
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    return f"{domain}/{path}:{tag}"


def _entry(item: object, label: str, number: int) -> _Entry:
    where = f"manifest.json entry {number}"
    if not isinstance(item, dict):
        raise ConfigError(f"{label}: {where} is not a JSON object; {EXPORT_AGAIN}")
    config = item.get("Config")
    if not isinstance(config, str) or not config:
        raise ConfigError(f"{label}: {where} has no Config; {EXPORT_AGAIN}")
    tags = item.get("RepoTags") or []
    layers = item.get("Layers")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ConfigError(
            f"{label}: {where} has RepoTags that are not a list of strings; {EXPORT_AGAIN}"
        )
    if not isinstance(layers, list) or not all(isinstance(x, str) and x for x in layers):
        raise ConfigError(f"{label}: {where} has no Layers list of file names; {EXPORT_AGAIN}")
    return _Entry(config, tuple(tags), tuple(layers))


_LISTING = Listing(file="manifest.json", hint=":name:tag or :@N", verb="tagged", separator="; ")


def _select(entries: list[_Entry], ref: str | None, label: str) -> _Entry:
    wanted = normalise_tag(ref) if ref else ""
    return select_image(
        entries,
        ref,
        label=label,
        listing=_LISTING,
        names=[f"@{n} " + (", ".join(e.repo_tags) or "(untagged)") for n, e in enumerate(entries)],
        matches=lambda entry: any(normalise_tag(tag) == wanted for tag in entry.repo_tags),
    )


def _digest_in_path(path: str) -> str | None:
    """`sha256:<hex>` when `path` is `blobs/sha256/<hex>` (Docker 25+), else None."""
    prefix = "blobs/sha256/"
    if not path.startswith(prefix):
        return None
    digest = "sha256:" + path.removeprefix(prefix)
    return digest if is_digest(digest) else None


def _stored_oci_manifest(files: Files, entry: _Entry) -> ImageManifest | None:
    """The OCI manifest index.json reaches whose config and layers are the entry's, if any."""
    config = _digest_in_path(entry.config)
    in_paths = [_digest_in_path(path) for path in entry.layers]
    layers = [digest for digest in in_paths if digest is not None]
    if config is None or len(layers) != len(in_paths):
        return None
    label = files.label
    index = parse_object(read_small(files, "index.json", "index.json"), label, "index.json")
    items = index.get("manifests")
    if not isinstance(items, list):  # `"manifests": null` from 25.0's `docker save x@digest`
        return None
    queue = deque(
        (parse_descriptor(item, label, f"entry {n} of index.json"), 0)
        for n, item in enumerate(items)
    )
    seen: set[str] = set()
    while queue:
        desc, depth = queue.popleft()
        # The containerd image store saves whole indexes but only its own platform's blobs:
        # absent manifests are skipped, not errors.
        if desc.digest in seen or files.get(blob_name(desc.digest)) is None:
            continue
        seen.add(desc.digest)
        raw = read_manifest(files, desc)
        doc = parse_object(raw, label, f"manifest {desc.digest}")
        media_type = media_type_of(doc, desc.media_type, label, desc.digest)
        if media_type in INDEX_TYPES and depth + 1 < _INDEX_DEPTH:
            what = f"index {desc.digest}"
            queue.extend(
                (parse_descriptor(item, label, f"entry {n} of {what}"), depth + 1)
                for n, item in enumerate(get_list(doc, "manifests", label, what))
            )
        elif media_type in MANIFEST_TYPES and _names(doc, label) == (config, layers):
            return build_manifest(files, raw, doc, desc.digest, media_type)
    return None


def _names(doc: JsonObject, label: str) -> tuple[str, list[str]] | None:
    try:
        config = parse_descriptor(doc.get("config"), label, "config")
        layers: list[Descriptor] = [
            parse_descriptor(item, label, "layer")
            for item in get_list(doc, "layers", label, "manifest")
        ]
    except ConfigError:
        return None  # not a manifest of this image; a bad one is reported if it is selected
    return config.digest, [layer.digest for layer in layers]


def _synthesise(files: Files, entry: _Entry) -> ImageManifest:
    label = files.label
    what = f"image config {entry.config}"
    config_section, config_raw = read_member(files, entry.config, what, MAX_CONFIG_BYTES)
    config_digest = sha256_digest(config_raw)
    stated = _digest_in_path(entry.config)
    if stated is not None and stated != config_digest:
        raise ConfigError(f"{label}: {what} does not match its digest (corrupt); {EXPORT_AGAIN}")
    config_doc = parse_object(config_raw, label, what)
    rootfs = config_doc.get("rootfs")
    diff_ids = get_list(rootfs, "diff_ids", label, what) if isinstance(rootfs, dict) else None
    if diff_ids is None:
        raise ConfigError(f"{label}: {what} has no rootfs.diff_ids; {EXPORT_AGAIN}")
    if len(diff_ids) != len(entry.layers):
        raise ConfigError(
            f"{label}: manifest.json lists {len(entry.layers)} layers but {what} has "
            f"{len(diff_ids)} rootfs.diff_ids; {EXPORT_AGAIN}"
        )
    layers = [
        _layer(files, path, check_digest(diff_id, label, f"diff_id {number} of {what}"))
        for number, (path, diff_id) in enumerate(zip(entry.layers, diff_ids, strict=True))
    ]
    config = Blob(
        digest=config_digest, size=len(config_raw), media_type=OCI_CONFIG, open=config_section.open
    )
    # Fixed key order and compact separators: the same archive always yields the same digest.
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(config),
        "layers": [_descriptor(layer) for layer in layers],
    }
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ConfigError(
            f"{label}: the image has too many layers for one manifest (over 4 MiB); squash layers"
        )
    return ImageManifest(
        manifest=raw,
        media_type=OCI_MANIFEST,
        digest=sha256_digest(raw),
        config=config,
        layers=tuple(layers),
    )


def _descriptor(item: Blob) -> dict[str, object]:
    return {"mediaType": item.media_type, "digest": item.digest, "size": item.size}


def _layer(files: Files, path: str, diff_id: str) -> Blob:
    section = files.get(path)
    if section is None:
        raise ConfigError(
            f"{files.label}: layer {path} named by manifest.json is missing; {EXPORT_AGAIN}"
        )
    try:
        with section.open() as stream:
            gzipped = stream.read(2) == b"\x1f\x8b"
        # An uncompressed layer's digest is its diff_id; a gzip one must be hashed.
        digest = _hash(section) if gzipped else diff_id
    except OSError as exc:
        raise ConfigError(f"{files.label}: cannot read layer {path}: {exc}") from exc
    media_type = OCI_LAYER_GZIP if gzipped else OCI_LAYER_TAR
    return Blob(digest=digest, size=section.size, media_type=media_type, open=section.open)


def _hash(section: Section) -> str:
    digest = hashlib.sha256()
    with section.open() as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
