"""Bad input is refused: one table over every variable, flag and file the tool reads.

Each row runs the installed CLI against the real peers (patched moto, docker-registry) in a job
environment that pushes successfully as it stands (`test_the_baseline_job_pushes` proves it),
with one thing made wrong. Each row must end with its exit code, exactly one stderr line
`gitlab-xacct: error: ...` naming the input and the fix, no traceback, nothing on stdout, nothing
in the registry's storage, and no file written: no report, no temp file, nothing in HOME or TMPDIR.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from tests.imagefactory import (
    TarEntry,
    hex_of,
    make_layer,
    tar_bytes,
    write_blob,
    write_docker_archive_classic,
    write_oci_archive,
    write_oci_index_layout,
    write_oci_layout,
)
from tests.integration.conftest import Job

Builder = Callable[[Path], str]  # makes a bad input under the folder, returns what {bad} becomes
Snapshot = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class Case:
    """One bad input. `argv` and `env` may use {bad} (what `build` returned), {good} (a valid
    OCI layout unique to the row), {registry} (host:port of the stand-in) and {out} (the report
    folder). `names` is the input the message must name; `says` holds parts of the problem and
    of the fix that it must also carry."""

    id: str
    names: str
    says: str | tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    argv: tuple[str, ...] = ("push",)
    build: Builder | None = None
    code: int = 2
    unset: tuple[str, ...] = ()  # variables of the baseline job removed for this row


# ---- bad files ----------------------------------------------------------------------------


def _layout(root: Path, name: str = "layout") -> tuple[Path, dict[str, object], str]:
    """A valid one-image layout; returns it, its manifest document and the manifest digest."""
    layout = root / name
    info = write_oci_layout(layout, [make_layer({"hello.txt": b"bad input test\n"})])
    return layout, json.loads(info.manifest), info.manifest_digest


def _set_manifest(layout: Path, doc: Mapping[str, object], *, pad: int = 0) -> str:
    """Store `doc` as the manifest index.json points at (the old blob stays)."""
    raw = json.dumps(doc).encode() + b" " * pad
    digest = write_blob(layout, raw)
    index = {"schemaVersion": 2, "manifests": [_descriptor(digest, len(raw), "latest")]}
    (layout / "index.json").write_text(json.dumps(index))
    return digest


def _descriptor(
    digest: str,
    size: int,
    ref: str | None = None,
    media_type: str = "application/vnd.oci.image.manifest.v1+json",
) -> dict[str, object]:
    desc: dict[str, object] = {"mediaType": media_type, "digest": digest, "size": size}
    if ref:
        desc["annotations"] = {"org.opencontainers.image.ref.name": ref}
    return desc


def _layout_source(change: Callable[[Path, dict[str, object], str], None]) -> Builder:
    def build(root: Path) -> str:
        layout, manifest, digest = _layout(root)
        change(layout, manifest, digest)
        return f"oci:{layout}:latest"

    return build


def _missing_layer(layout: Path, manifest: dict[str, object], _digest: str) -> None:
    layers = manifest["layers"]
    assert isinstance(layers, list)
    (layout / "blobs" / "sha256" / hex_of(layers[0]["digest"])).unlink()


def _missing_config(layout: Path, manifest: dict[str, object], _digest: str) -> None:
    config = manifest["config"]
    assert isinstance(config, dict)
    (layout / "blobs" / "sha256" / hex_of(config["digest"])).unlink()


def _layer_digest(value: str) -> Callable[[Path, dict[str, object], str], None]:
    def change(layout: Path, manifest: dict[str, object], _digest: str) -> None:
        layers = manifest["layers"]
        assert isinstance(layers, list)
        layers[0]["digest"] = value
        _set_manifest(layout, manifest)

    return change


def _layer_size(layout: Path, manifest: dict[str, object], _digest: str) -> None:
    layers = manifest["layers"]
    assert isinstance(layers, list)
    layers[0]["size"] += 7
    _set_manifest(layout, manifest)


def _oversized_manifest(layout: Path, manifest: dict[str, object], _digest: str) -> None:
    _set_manifest(layout, manifest, pad=4 * 1024 * 1024)


def _oversized_index_json(layout: Path, _manifest: dict[str, object], _digest: str) -> None:
    index = json.loads((layout / "index.json").read_text())
    (layout / "index.json").write_text(json.dumps(index) + " " * (4 * 1024 * 1024))


def _corrupt_manifest(layout: Path, _manifest: dict[str, object], digest: str) -> None:
    path = layout / "blobs" / "sha256" / hex_of(digest)
    path.write_bytes(path.read_bytes().replace(b'"schemaVersion"', b'"schemaversion"'))


def _oci_layout_file(text: str | None) -> Callable[[Path, dict[str, object], str], None]:
    def change(layout: Path, _manifest: dict[str, object], _digest: str) -> None:
        if text is None:
            (layout / "oci-layout").unlink()
        else:
            (layout / "oci-layout").write_text(text)

    return change


def _index_json(text: str | None) -> Callable[[Path, dict[str, object], str], None]:
    def change(layout: Path, _manifest: dict[str, object], _digest: str) -> None:
        if text is None:
            (layout / "index.json").unlink()
        else:
            (layout / "index.json").write_text(text)

    return change


def _manifest_not_utf8(layout: Path, _manifest: dict[str, object], _digest: str) -> None:
    raw = b'{"schemaVersion": 2, "note": "\xff\xfe"}'
    digest = write_blob(layout, raw)
    index = {"schemaVersion": 2, "manifests": [_descriptor(digest, len(raw), "latest")]}
    (layout / "index.json").write_text(json.dumps(index))


def _layer_size_text(layout: Path, manifest: dict[str, object], _digest: str) -> None:
    layers = manifest["layers"]
    assert isinstance(layers, list)
    layers[0]["size"] = str(layers[0]["size"])
    _set_manifest(layout, manifest)


def _blob_is_a_directory(layout: Path, _manifest: dict[str, object], digest: str) -> None:
    path = layout / "blobs" / "sha256" / hex_of(digest)
    path.unlink()
    path.mkdir()


def _nested_index(root: Path) -> str:
    """index.json -> an index whose entry is another index (the outer one's child)."""
    layout = root / "layout"
    inner = write_oci_index_layout(layout, ref=None)
    outer = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                _descriptor(
                    inner.index_digest,
                    len(inner.index),
                    media_type="application/vnd.oci.image.index.v1+json",
                )
            ],
        }
    ).encode()
    digest = write_blob(layout, outer)
    index = {
        "schemaVersion": 2,
        "manifests": [
            _descriptor(digest, len(outer), "latest", "application/vnd.oci.image.index.v1+json")
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return f"oci:{layout}:latest"


def _index_loop(root: Path) -> str:
    """An index that names itself: content addressing makes a true cycle impossible, so the
    loop is an index whose child entry is stored under another digest holding the index's own
    bytes (a reader that trusted names over content would walk it for ever)."""
    layout = root / "layout"
    index_info = write_oci_index_layout(layout, ref="latest")
    fake = "sha256:" + "0" * 64
    doc = json.loads(index_info.index)
    doc["manifests"][0]["digest"] = fake
    doc["manifests"][0]["size"] = len(index_info.index)
    raw = json.dumps(doc).encode()
    (layout / "blobs" / "sha256" / hex_of(fake)).write_bytes(raw)
    digest = write_blob(layout, raw)
    index = {
        "schemaVersion": 2,
        "manifests": [
            _descriptor(digest, len(raw), "latest", "application/vnd.oci.image.index.v1+json")
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return f"oci:{layout}:latest"


def _layout_tar_entries(root: Path) -> tuple[list[TarEntry], str]:
    layout, _manifest, digest = _layout(root)
    entries = [
        TarEntry(p.relative_to(layout).as_posix(), p.read_bytes())
        for p in sorted(layout.rglob("*"))
        if p.is_file()
    ]
    return entries, "blobs/sha256/" + hex_of(digest)


def _archive(change: Callable[[list[TarEntry], str], list[TarEntry]], gz: bool = False) -> Builder:
    """An oci-archive of a valid layout, its member list changed (`str`: the manifest member)."""

    def build(root: Path) -> str:
        entries, manifest_member = _layout_tar_entries(root)
        data = tar_bytes(change(entries, manifest_member))
        file = root / "image.tar"
        file.write_bytes(gzip.compress(data, mtime=0) if gz else data)
        return f"oci-archive:{file}"

    return build


Change = Callable[[list[TarEntry], str], list[TarEntry]]


def _replace(kind: Literal["symlink", "hardlink"], link: str) -> Change:
    def change(entries: list[TarEntry], manifest_member: str) -> list[TarEntry]:
        kept = [e for e in entries if e.name != manifest_member]
        return [*kept, TarEntry(manifest_member, kind=kind, link=link)]

    return change


def _plus(entry: TarEntry) -> Callable[[list[TarEntry], str], list[TarEntry]]:
    return lambda entries, _member: [entry, *entries]


def _link_loop(entries: list[TarEntry], manifest_member: str) -> list[TarEntry]:
    kept = [e for e in entries if e.name != manifest_member]
    return [
        *kept,
        TarEntry(manifest_member, kind="symlink", link="loop"),
        TarEntry("blobs/sha256/loop", kind="symlink", link=manifest_member.rpartition("/")[2]),
    ]


def _raw_file(data: bytes, transport: str = "oci-archive") -> Builder:
    def build(root: Path) -> str:
        file = root / "image.tar"
        file.write_bytes(data)
        return f"{transport}:{file}"

    return build


def _truncated(gz: bool) -> Builder:
    def build(root: Path) -> str:
        entries, _member = _layout_tar_entries(root)
        data = tar_bytes(entries)
        data = gzip.compress(data, mtime=0) if gz else data
        file = root / "image.tar"
        file.write_bytes(data[: len(data) * 2 // 3])
        return f"oci-archive:{file}"

    return build


def _docker_archive(change: Callable[[list[TarEntry]], list[TarEntry]]) -> Builder:
    def build(root: Path) -> str:
        original = root / "saved.tar"
        write_docker_archive_classic(original, [make_layer({"a": b"docker save\n"})])
        with tarfile.open(original) as archive:
            entries = [
                TarEntry(m.name, archive.extractfile(m).read())  # type: ignore[union-attr]
                if m.isreg()
                else TarEntry(m.name, kind="dir")
                for m in archive.getmembers()
                if m.isreg() or m.isdir()
            ]
        file = root / "image.tar"
        file.write_bytes(tar_bytes(change(entries)))
        return f"docker-archive:{file}"

    return build


def _without(suffix: str) -> Callable[[list[TarEntry]], list[TarEntry]]:
    return lambda entries: [e for e in entries if not e.name.endswith(suffix)]


def _layer_escapes(entries: list[TarEntry]) -> list[TarEntry]:
    layer = next(e for e in entries if e.name.endswith("/layer.tar"))
    kept = [e for e in entries if e is not layer]
    return [*kept, TarEntry(layer.name, kind="symlink", link="../../../../etc/passwd")]


def _extra_layer_in_manifest(entries: list[TarEntry]) -> list[TarEntry]:
    manifest = next(e for e in entries if e.name == "manifest.json")
    doc = json.loads(manifest.data)
    doc[0]["Layers"].append(doc[0]["Layers"][0])
    kept = [e for e in entries if e is not manifest]
    return [*kept, TarEntry("manifest.json", json.dumps(doc).encode())]


def _directory(root: Path) -> str:
    folder = root / "a-folder"
    folder.mkdir()
    return f"oci-archive:{folder}"


def _file_for_layout(root: Path) -> str:
    file = root / "image.tar"
    write_oci_archive(file, _layout(root)[0])
    return f"oci:{file}"


def _dotenv_directory(root: Path) -> str:
    folder = root / "reports"
    folder.mkdir()
    return str(folder)


def _file(name: str, data: bytes, *, folder: bool = False) -> Builder:
    """A file of the user's (a Docker config, AWS credentials): its path, or its folder's."""

    def build(root: Path) -> str:
        path = root / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return str(path.parent if folder else path)

    return build


def _arm64_only(root: Path) -> str:
    layout = root / "arm"
    write_oci_index_layout(layout, {"linux/arm64": [make_layer({"arm": b"arm64\n"})]})
    return f"oci:{layout}:latest"


AGAIN = "export the image again"
ROLE = "arn:aws:iam::222222222222:role/OurThingBuildRole"
SHA = "sha256:" + "ab" * 32
COPY_DEST = "docker://{registry}/team/app:copied"

CASES: list[Case] = [
    # ---- role ARNs --------------------------------------------------------------------------
    Case("arn-other-partition", "XACCT_ROLE_ARN", "known: aws",
         {"XACCT_ROLE_ARN": "arn:aws-iso:iam::222222222222:role/OurThingBuildRole"}),
    Case("arn-other-service", "XACCT_ROLE_ARN", "expected arn:aws:iam::",
         {"XACCT_ROLE_ARN": "arn:aws:s3:::team-bucket"}),
    Case("arn-a-user", "XACCT_ROLE_ARN", "not a role",
         {"XACCT_ROLE_ARN": "arn:aws:iam::222222222222:user/gitlab"}),
    Case("arn-account-11-digits", "XACCT_ROLE_ARN", "exactly 12 digits",
         {"XACCT_ROLE_ARN": "arn:aws:iam::22222222222:role/OurThingBuildRole"}),
    Case("arn-account-13-digits", "--role-arn", "exactly 12 digits",
         argv=("push", "--role-arn", "arn:aws:iam::2222222222222:role/OurThingBuildRole")),
    Case("arn-role-name-space", "XACCT_ROLE_ARN", "allowed: letters",
         {"XACCT_ROLE_ARN": "arn:aws:iam::222222222222:role/Our Thing"}),
    Case("arn-trailing-newline", "XACCT_ROLE_ARN", "expected arn:aws:iam::",
         {"XACCT_ROLE_ARN": f"{ROLE}\n"}),
    Case("arn-just-a-name", "XACCT_ROLE_ARN", "expected arn:aws:iam::",
         {"XACCT_ROLE_ARN": "OurThingBuildRole"}),
    Case("arn-china-region-eu", "AWS_DEFAULT_REGION", "use a region of aws-cn",
         {"XACCT_ROLE_ARN": "arn:aws-cn:iam::222222222222:role/OurThingBuildRole"}),
    Case("chain-empty-hop", "XACCT_ROLE_CHAIN", "separate role ARNs by commas",
         {"XACCT_ROLE_CHAIN": f"{ROLE},,{ROLE}"}),
    Case("chain-bad-hop", "XACCT_ROLE_CHAIN hop 1", "12 digits",
         {"XACCT_ROLE_CHAIN": "arn:aws:iam::1234:role/Hub"}),
    Case("web-identity-token-empty", "XACCT_ID_TOKEN", "id_tokens:",
         {"XACCT_WEB_IDENTITY_ROLE_ARN": ROLE}),
    Case("id-token-variable-name", "XACCT_ID_TOKEN_VARIABLE", "not starting with a digit",
         {"XACCT_WEB_IDENTITY_ROLE_ARN": ROLE, "XACCT_ID_TOKEN_VARIABLE": "1-token"}),
    # ---- External IDs, sessions, durations, accounts -----------------------------------------
    Case("external-id-too-short", "XACCT_EXTERNAL_ID", "2 to 1224", {"XACCT_EXTERNAL_ID": "x"}),
    Case("external-id-too-long", "XACCT_EXTERNAL_ID", "2 to 1224",
         {"XACCT_EXTERNAL_ID": "e" * 1225}),
    Case("external-id-forbidden-char", "XACCT_EXTERNAL_ID", "allowed: letters",
         {"XACCT_EXTERNAL_ID": "sentinel#ExtId"}),
    Case("session-name-too-long", "XACCT_SESSION_NAME", "2-64 characters",
         {"XACCT_SESSION_NAME": "s" * 65}),
    Case("session-name-space", "--session-name", "2-64 characters",
         argv=("push", "--session-name", "my session")),
    Case("duration-too-short", "XACCT_DURATION_SECONDS", "900 to 43200",
         {"XACCT_DURATION_SECONDS": "899"}),
    Case("duration-with-unit", "XACCT_DURATION_SECONDS", "whole seconds",
         {"XACCT_DURATION_SECONDS": "1h"}),
    Case("chain-duration-over-an-hour", "XACCT_DURATION_SECONDS", "3600",
         {"XACCT_ROLE_CHAIN": ROLE, "XACCT_DURATION_SECONDS": "7200"}),
    Case("allowed-account-short", "XACCT_ALLOWED_ACCOUNT_IDS", "12 digits",
         {"XACCT_ALLOWED_ACCOUNT_IDS": "22222222222"}),
    # ---- regions, repositories, tags ---------------------------------------------------------
    Case("region-no-number", "XACCT_REGION", "for example eu-west-1",
         {"XACCT_REGION": "eu-west"}),
    Case("region-upper-case", "XACCT_REGION", "for example eu-west-1",
         {"XACCT_REGION": "EU-WEST-1"}),
    Case("region-fallback-bad", "AWS_DEFAULT_REGION", "for example eu-west-1",
         {"AWS_DEFAULT_REGION": "europe"}),
    Case("repository-upper-case", "XACCT_REPOSITORY", "lower-case",
         {"XACCT_REPOSITORY": "Team/App"}),
    Case("repository-a-uri", "XACCT_REPOSITORY", "without host, tag or digest",
         {"XACCT_REPOSITORY": "222222222222.dkr.ecr.eu-west-1.amazonaws.com/team/app"}),
    Case("repository-double-slash", "--repository", "lower-case",
         argv=("push", "--repository", "team//app")),
    Case("repository-from-project-path", "CI_PROJECT_PATH",
         ("lower-case", "or set XACCT_REPOSITORY"),
         {"CI_PROJECT_PATH": "Team/My App"}),
    Case("tag-129-chars", "XACCT_TAGS", "1-128 characters", {"XACCT_TAGS": "t" * 129}),
    Case("tag-plus-sign", "--tag", "1-128 characters", argv=("push", "--tag", "1.0+build")),
    Case("tag-leading-dot", "XACCT_TAGS", "not starting with", {"XACCT_TAGS": ".hidden"}),
    Case("tag-from-commit-tag", "CI_COMMIT_TAG", ("1-128", "or set XACCT_TAGS"),
         {"CI_COMMIT_TAG": "release/1.0"}),
    Case("tags-only-separators", "XACCT_TAGS", "lists no tag; give tags separated",
         {"XACCT_TAGS": " , ,"}),
    # ---- sources and references --------------------------------------------------------------
    Case("transport-unknown", "XACCT_SOURCE", "expected oci:PATH",
         {"XACCT_SOURCE": "docker-daemon:team/app:1"}),
    Case("transport-missing", "XACCT_SOURCE", "expected oci:PATH", {"XACCT_SOURCE": "image.tar"}),
    Case("reference-whitespace", "XACCT_SOURCE", "expected oci:PATH",
         {"XACCT_SOURCE": "oci:{good}:la test"}),
    Case("reference-at-not-number", "--source", "such as @0",
         argv=("push", "--source", "oci:{good}:@first")),
    Case("reference-not-in-layout", "XACCT_SOURCE", "available: latest",
         {"XACCT_SOURCE": "oci:{good}:nope"}),
    Case("docker-host-no-dot", "XACCT_SOURCE", "Docker Hub is docker.io/NAME",
         {"XACCT_SOURCE": "docker://alpine/app:3"}),
    Case("docker-host-underscore", "XACCT_SOURCE", "docker://HOST/REPO",
         {"XACCT_SOURCE": "docker://r_1.example.org/app:3"}),
    Case("docker-digest-sha512", "XACCT_SOURCE", "64 lowercase hex",
         {"XACCT_SOURCE": "docker://r.example.org/app@sha512:" + "ab" * 64}),
    Case("docker-digest-short", "XACCT_SOURCE", "64 lowercase hex",
         {"XACCT_SOURCE": "docker://r.example.org/app@sha256:abcdef"}),
    Case("docker-tag-and-digest", "XACCT_SOURCE", "not both",
         {"XACCT_SOURCE": f"docker://r.example.org/app:1@{SHA}"}),
    Case("copy-dest-digest", "DEST", "name a tag",
         argv=("copy", "oci:{good}:latest", "docker://{registry}/team/app@" + SHA)),
    Case("copy-dest-not-docker", "DEST", "docker://HOST/REPO",
         argv=("copy", "oci:{good}:latest", "oci:/elsewhere:latest")),
    Case("copy-dest-no-tag", "DEST", "docker://HOST/REPO:TAG",
         argv=("copy", "oci:{good}:latest", "docker://{registry}/team/app")),
    Case("copy-dest-upper-case-repo", "DEST", "lower-case",
         argv=("copy", "oci:{good}:latest", "docker://{registry}/Team/App:1")),
    # ---- archives ----------------------------------------------------------------------------
    Case("archive-missing", "XACCT_SOURCE", ("no such file", "check the path"),
         {"XACCT_SOURCE": "oci-archive:{out}/../absent.tar"}),
    Case("archive-is-a-directory", "XACCT_SOURCE", ("expected a tar archive", "is oci:"),
         {"XACCT_SOURCE": "{bad}"}, build=_directory),
    Case("archive-not-tar", "XACCT_SOURCE", ("not a valid tar archive", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_raw_file(b"this is not a tar archive\n" * 40)),
    Case("archive-empty", "XACCT_SOURCE", ("not a valid tar archive", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_raw_file(b"")),
    Case("archive-zstd", "XACCT_SOURCE", "decompress it",
         {"XACCT_SOURCE": "{bad}"}, build=_raw_file(b"\x28\xb5\x2f\xfd" + b"\0" * 600)),
    Case("archive-truncated", "XACCT_SOURCE", ("truncated", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_truncated(gz=False)),
    Case("archive-gzip-truncated", "XACCT_SOURCE", ("truncated", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_truncated(gz=True)),
    Case("archive-path-traversal", "XACCT_SOURCE", ("unsafe path", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_archive(_plus(TarEntry("../escaped", b"x")))),
    Case("archive-gzip-path-traversal", "XACCT_SOURCE", ("unsafe path", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_archive(_plus(TarEntry("blobs/../../x", b"x")), True)),
    Case("archive-absolute-path", "XACCT_SOURCE", ("unsafe path", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_archive(_plus(TarEntry("/etc/cron.d/x", b"x")))),
    Case("archive-symlink-out", "XACCT_SOURCE", ("outside the archive", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_archive(_replace("symlink", "../../../etc/passwd"))),
    Case("archive-gzip-symlink-out", "XACCT_SOURCE", ("outside the archive", AGAIN),
         {"XACCT_SOURCE": "{bad}"},
         build=_archive(_replace("symlink", "../../../etc/passwd"), gz=True)),
    Case("archive-hardlink-absolute", "XACCT_SOURCE", ("outside the archive", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_archive(_replace("hardlink", "/etc/passwd"))),
    Case("archive-hardlink-missing", "XACCT_SOURCE", ("absent", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_archive(_replace("hardlink", "blobs/sha256/nothing"))),
    Case("archive-symlink-loop", "XACCT_SOURCE", ("link loop", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_archive(_link_loop)),
    Case("docker-archive-no-manifest", "XACCT_SOURCE", ("docker save", "oci-archive:"),
         {"XACCT_SOURCE": "{bad}"}, build=_docker_archive(_without("manifest.json"))),
    Case("docker-archive-missing-layer", "XACCT_SOURCE", ("is missing", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_docker_archive(_without("layer.tar"))),
    Case("docker-archive-layer-escapes", "XACCT_SOURCE", ("outside the archive", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_docker_archive(_layer_escapes)),
    Case("docker-archive-layer-count", "XACCT_SOURCE", ("rootfs.diff_ids", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_docker_archive(_extra_layer_in_manifest)),
    Case("docker-archive-no-such-tag", "SRC", "available:",
         argv=("copy", "{bad}:team/other:2", COPY_DEST),
         build=_docker_archive(lambda entries: entries)),
    # ---- OCI layouts -------------------------------------------------------------------------
    Case("layout-path-with-newline", "XACCT_SOURCE", ("absent\\nlayout", "no such OCI layout"),
         {"XACCT_SOURCE": "oci:{out}/../absent\nlayout:latest"}),
    Case("layout-missing", "XACCT_SOURCE", "no such OCI layout directory",
         {"XACCT_SOURCE": "oci:{out}/../absent-layout"}),
    Case("layout-is-a-file", "XACCT_SOURCE", "oci-archive:",
         {"XACCT_SOURCE": "{bad}"}, build=_file_for_layout),
    Case("layout-missing-layer", "XACCT_SOURCE", ("is missing", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_missing_layer)),
    Case("layout-missing-config", "SRC", ("is missing", AGAIN), argv=("copy", "{bad}", COPY_DEST),
         build=_layout_source(_missing_config)),
    Case("layout-digest-sha512", "XACCT_SOURCE", ("only sha256:", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_layer_digest("sha512:" + "ab" * 64))),
    Case("layout-digest-short", "XACCT_SOURCE", ("only sha256:", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_layer_digest("sha256:abc"))),
    Case("layout-layer-size", "XACCT_SOURCE", ("the manifest says", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_layer_size)),
    Case("layout-manifest-corrupt", "XACCT_SOURCE", ("corrupt", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_corrupt_manifest)),
    Case("layout-manifest-over-4mib", "XACCT_SOURCE", ("4 MiB limit", "registries refuse"),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_oversized_manifest)),
    Case("layout-index-json-over-4mib", "XACCT_SOURCE", ("4 MiB limit", "registries refuse"),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_oversized_index_json)),
    Case("layout-version-2", "XACCT_SOURCE", ("imageLayoutVersion", AGAIN),
         {"XACCT_SOURCE": "{bad}"},
         build=_layout_source(_oci_layout_file('{"imageLayoutVersion": "2.0.0"}'))),
    Case("layout-oci-layout-not-json", "XACCT_SOURCE", ("oci-layout is not valid JSON", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_oci_layout_file("imageLayoutVersion"))),
    Case("layout-oci-layout-missing", "XACCT_SOURCE", ("oci-layout is missing", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_oci_layout_file(None))),
    Case("layout-index-json-missing", "XACCT_SOURCE", ("index.json is missing", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_index_json(None))),
    Case("layout-index-json-no-list", "XACCT_SOURCE", ("'manifests' list", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_index_json('{"schemaVersion": 2}'))),
    Case("layout-index-json-deep-nesting", "XACCT_SOURCE", ("index.json is not valid JSON", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_index_json("[" * 100_000))),
    Case("layout-manifest-not-utf8", "XACCT_SOURCE", ("is not valid JSON", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_manifest_not_utf8)),
    Case("layout-size-a-string", "XACCT_SOURCE", ("has no valid size", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_layer_size_text)),
    Case("layout-blob-is-a-directory", "XACCT_SOURCE", ("not a regular file", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_layout_source(_blob_is_a_directory)),
    Case("layout-nested-index", "XACCT_SOURCE", ("nests another index", "choose it with :REF"),
         {"XACCT_SOURCE": "{bad}"}, build=_nested_index),
    Case("layout-index-loop", "XACCT_SOURCE", ("corrupt", AGAIN),
         {"XACCT_SOURCE": "{bad}"}, build=_index_loop),
    # ---- platforms ---------------------------------------------------------------------------
    Case("platform-arch-typo", "XACCT_PLATFORMS", "did you mean amd64",
         {"XACCT_PLATFORMS": "linux/amd46"}),
    Case("platform-os-typo", "--platform", "did you mean linux",
         argv=("push", "--platform", "linx/arm64")),
    Case("platform-no-arch", "XACCT_PLATFORMS", "os/arch", {"XACCT_PLATFORMS": "linux"}),
    Case("platform-not-in-image", "XACCT_PLATFORMS", "it has linux/arm64",
         {"XACCT_PLATFORMS": "linux/amd64", "XACCT_SOURCE": "{bad}"}, build=_arm64_only),
    # ---- variables, destinations, switches, sizes --------------------------------------------
    Case("unknown-variable-region", "XACCT_REGOIN", "did you mean XACCT_REGION",
         {"XACCT_REGOIN": "eu-west-1"}),
    Case("unknown-variable-external-id", "XACCT_EXTERNALID", "did you mean XACCT_EXTERNAL_ID",
         {"XACCT_EXTERNALID": "whatever-value"}),
    Case("destinations-two-fields", "XACCT_DESTINATIONS entry 1", "ROLE_ARN|REGION|REPOSITORY",
         {"XACCT_DESTINATIONS": f"{ROLE}|eu-west-1"}),
    Case("destinations-six-fields", "XACCT_DESTINATIONS entry 2", "ROLE_ARN|REGION|REPOSITORY",
         {"XACCT_DESTINATIONS": f"{ROLE}|us-east-1|team/app\n{ROLE}|a|b|c|d|e"}),
    Case("destinations-bad-region", "XACCT_DESTINATIONS entry 1", "for example eu-west-1",
         {"XACCT_DESTINATIONS": f"{ROLE}|mars-1|team/app"}),
    Case("destinations-http-endpoint", "--destination 1", "use https://",
         argv=("push", "--destination", f"{ROLE}|us-east-1|team/app||http://r.example.org")),
    Case("destinations-empty", "XACCT_DESTINATIONS", "lists no destination",
         {"XACCT_DESTINATIONS": " , "}),
    Case("boolean-debug", "XACCT_DEBUG", "use true or false", {"XACCT_DEBUG": "verbose"}),
    Case("boolean-create-repository", "XACCT_CREATE_REPOSITORY", "use true or false",
         {"XACCT_CREATE_REPOSITORY": "maybe"}),
    Case("boolean-session-tags", "XACCT_SESSION_TAGS", "use true or false",
         {"XACCT_SESSION_TAGS": "2"}),
    Case("boolean-skip-existing", "XACCT_SKIP_EXISTING_TAGS", "use true or false",
         {"XACCT_SKIP_EXISTING_TAGS": "enabled"}),
    Case("parallelism-zero", "XACCT_PARALLELISM", "from 1 to 32", {"XACCT_PARALLELISM": "0"}),
    Case("parallelism-huge", "--parallelism", "from 1 to 32",
         argv=("push", "--parallelism", "1000000")),
    Case("parallelism-word", "XACCT_PARALLELISM", "from 1 to 32", {"XACCT_PARALLELISM": "four"}),
    Case("chunk-size-fraction", "XACCT_CHUNK_SIZE", "16M",
         {"XACCT_CHUNK_SIZE": "1.5G"}, argv=("copy", "oci:{good}:latest", COPY_DEST)),
    Case("chunk-size-negative", "--chunk-size", "16M",
         argv=("copy", "oci:{good}:latest", COPY_DEST, "--chunk-size=-1")),
    Case("endpoint-plain-http-remote", "XACCT_REGISTRY_ENDPOINT", "use https://",
         {"XACCT_REGISTRY_ENDPOINT": "http://r.example.org"}),
    Case("endpoint-with-path", "XACCT_REGISTRY_ENDPOINT", "https://HOST[:PORT]",
         {"XACCT_REGISTRY_ENDPOINT": "https://r.example.org/v2/team"}),
    Case("endpoint-with-credentials", "XACCT_REGISTRY_ENDPOINT", "bare https://",
         {"XACCT_REGISTRY_ENDPOINT": "https://user:pw@r.example.org"}),
    Case("dotenv-is-a-directory", "XACCT_DOTENV", "give a file path",
         {"XACCT_DOTENV": "{bad}"}, build=_dotenv_directory),
    Case("dotenv-missing-parent", "--dotenv", "create it",
         argv=("push", "--dotenv", "{out}/no/such/folder/xacct.env")),
    # ---- the command line itself ---------------------------------------------------------------
    Case("flag-misspelt", "--regoin", "did you mean --region?",
         argv=("push", "--regoin", "eu-west-1")),
    Case("flag-without-value", "--parallelism", "see gitlab-xacct push --help",
         argv=("push", "--parallelism")),
    Case("flag-boolean-with-value", "--create-repository", "see gitlab-xacct push --help",
         argv=("push", "--create-repository=yes")),
    Case("command-unknown", "'pusj'", "choose from 'push'", argv=("pusj",)),
    Case("copy-without-dest", "DEST", "see gitlab-xacct copy --help",
         argv=("copy", "oci:{good}:latest")),
    Case("reference-number-out-of-range", "SRC", "lists 1",
         argv=("copy", "{bad}:@3", COPY_DEST), build=_docker_archive(lambda entries: entries)),
    # ---- other commands ----------------------------------------------------------------------
    Case("credentials-format", "XACCT_CREDENTIALS_FORMAT", "use one of env",
         {"XACCT_CREDENTIALS_FORMAT": "yaml"}, argv=("credentials", "--output", "{out}/c.env")),
    Case("credentials-profile", "--profile", "(1-64 letters",
         argv=("credentials", "--format", "aws-profile", "--profile", "our thing")),
    Case("credentials-output-directory", "--output", "give a file path",
         argv=("credentials", "--format", "dotenv", "--output", "{out}")),
    Case("login-docker-config-not-json", "config.json", ("not valid JSON", "left untouched"),
         {"XACCT_DOCKER_CONFIG": "{bad}"}, argv=("login",), build=_file("config.json", b"{auths")),
    Case("copy-docker-config-not-json", "config.json", ("not valid JSON", "fix or move it"),
         {"DOCKER_CONFIG": "{bad}"}, argv=("copy", "oci:{good}:latest", COPY_DEST),
         build=_file("config.json", b"[]x", folder=True), unset=("XACCT_DEST_CREDS",)),
    Case("credentials-file-not-ini", "aws-credentials", "fix or move it",
         argv=("credentials", "--format", "aws-profile", "--credentials-file", "{bad}"),
         build=_file("aws-credentials", b"aws_access_key_id = AKIA\n[broken")),
    Case("copy-src-creds-unset-variable", "--src-creds", "MISSING_LOGIN, which is not set",
         argv=("copy", "docker://127.0.0.1:1/team/app:1", COPY_DEST, "--src-creds",
               "MISSING_LOGIN")),
    Case("login-registry-short-account", "XACCT_LOGIN_REGISTRIES", "12 digits",
         {"XACCT_LOGIN_REGISTRIES": "33333333333"}, argv=("login",)),
    Case("copy-src-creds-malformed", "--src-creds", "USER:PASSWORD",
         argv=("copy", "docker://127.0.0.1:1/team/app:1", COPY_DEST, "--src-creds", "not a var")),
    Case("copy-https-proxy-over-tls", "HTTPS_PROXY", "give it as http://HOST:PORT",
         {"HTTPS_PROXY": "https://proxy.example:3128"},
         argv=("copy", "oci:{good}:latest", COPY_DEST)),
    Case("copy-all-proxy-socks", "ALL_PROXY", "only proxies reached over plain HTTP",
         {"ALL_PROXY": "socks5://proxy.example:1080"},
         argv=("copy", "oci:{good}:latest", COPY_DEST)),
]  # fmt: skip


# ---- the checks -----------------------------------------------------------------------------


def _snapshot(root: Path) -> Snapshot:
    """Every file under `root` with its size and modification time."""
    if not root.exists():
        return {}
    found: Snapshot = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            info = path.lstat()
            found[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return found


@pytest.fixture
def registry_data(peers_dir: Path) -> Path:
    """The stand-in registry's storage (spawn_registry's rootdirectory)."""
    return peers_dir / "registry" / "registry-data"


def _prepare(case: Case, job: Job, root: Path) -> tuple[list[str], dict[str, str], Path, Path]:
    """The row's argv and environment, a fresh report folder and TMPDIR."""
    out, tmp, work = root / "out", root / "tmp", root / "work"
    for folder in (out, tmp, work):
        folder.mkdir()
    good = work / "good"
    # A layer unique to the row: if the row were let through, the registry would gain blobs.
    write_oci_layout(good, [make_layer({"row.txt": f"{case.id}\n".encode()})])
    values = {
        "good": str(good),
        "registry": job.registry.host,
        "out": str(out),
        "bad": case.build(work) if case.build else "",
    }
    env = job.env(
        XACCT_SOURCE=f"oci:{good}:latest",
        XACCT_DOTENV=str(out / "xacct.env"),
        CI_COMMIT_SHORT_SHA=f"bad-{case.id}"[:128],
    )
    env.update(TMPDIR=str(tmp), REG_LOGIN=f"{job.registry.username}:{job.registry.password}")
    env.update(XACCT_DEST_CREDS="REG_LOGIN")
    env.update({k: v.format_map(values) for k, v in case.env.items()})
    for name in case.unset:
        env.pop(name, None)
    argv = [a.format_map(values) for a in case.argv]
    return argv, env, out, tmp


def test_the_table_is_large_and_every_row_distinct() -> None:
    assert len(CASES) >= 50, len(CASES)
    assert len({case.id for case in CASES}) == len(CASES)


def test_reliability_doc_quotes_the_table() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text()
    assert f"`CASES`, of **{len(CASES)}** bad inputs" in doc
    assert f"| {len(CASES)} bad inputs tried, {len(CASES)} refused" in doc
    section = doc.partition("## Bad input")[2].partition("\n## ")[0]
    groups = re.findall(r"^\| [a-zA-Z ,]+ \| (\d+) \| ", section, re.M)
    assert sum(map(int, groups)) == len(CASES), "the groups of docs/reliability.md do not add up"


def test_the_baseline_job_pushes(job: Job, tmp_path: Path, registry_data: Path) -> None:
    """The environment every row starts from pushes and writes its report: each refusal below
    is the check's doing, and a row let through would change the registry and the folder."""
    argv, env, out, tmp = _prepare(Case("baseline", "", ()), job, tmp_path)
    before = _snapshot(registry_data)

    result = job.run(*argv, env=env)

    assert result.returncode == 0, result.stderr
    assert (out / "xacct.env").read_text().startswith("XACCT_IMAGE_URI=")
    assert _snapshot(registry_data) != before
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_in_one_line(
    case: Case, job: Job, tmp_path: Path, registry_data: Path
) -> None:
    argv, env, out, tmp = _prepare(case, job, tmp_path)
    registry_before, home_before = _snapshot(registry_data), _snapshot(job.home)
    inputs_before = _snapshot(tmp_path / "work")

    result = job.run(*argv, env=env)

    lines = result.stderr.splitlines()
    assert result.returncode == case.code, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gitlab-xacct: error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert case.names in lines[0], f"the message does not name {case.names}: {lines[0]}"
    for part in (case.says,) if isinstance(case.says, str) else case.says:
        assert part in lines[0], f"the message does not say {part!r}: {lines[0]}"
    assert result.stdout == ""
    assert _snapshot(registry_data) == registry_before, "the registry changed"
    assert _snapshot(job.home) == home_before, "HOME changed"
    assert _snapshot(tmp_path / "work") == inputs_before, "an input file was changed"
    assert list(out.iterdir()) == [], "a file was written next to the report"
    assert list(tmp.iterdir()) == [], "a temporary file was left behind"
