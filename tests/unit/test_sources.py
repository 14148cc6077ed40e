"""Image sources: every format, REF selection, byte-for-byte manifests, and every bad input."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tarfile
import tempfile
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gitlab_xacct.config.source import SourceSpec, parse_source
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.registry.docker_archive import normalise_tag
from gitlab_xacct.registry.image import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    Blob,
    ImageIndex,
    ImageManifest,
    SourceImage,
)
from gitlab_xacct.registry.sources import open_source
from tests.imagefactory import (
    DockerImage,
    TarEntry,
    digest_of,
    gzip_bytes,
    hex_of,
    make_layer,
    random_layer,
    tar_bytes,
    write_blob,
    write_docker_archive_classic,
    write_docker_archive_oci,
    write_image_blobs,
    write_oci_archive,
    write_oci_index_layout,
    write_oci_layout,
    write_tar,
)

LAYERS = [make_layer({"etc/hello": b"hello\n"}), make_layer({"usr/bin/tool": b"#!/bin/sh\n"})]
FORMS = (
    "oci:PATH[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:NAME:TAG|:@N] or "
    "docker://HOST/REPO[:TAG|@DIGEST]"
)


def load(spec: str) -> SourceImage:
    with open_source(parse_source(spec)) as image:
        return image


def load_manifest(spec: str) -> ImageManifest:
    image = load(spec)
    assert isinstance(image, ImageManifest)
    return image


def read(blob: Blob) -> bytes:
    with blob.open() as stream:
        return stream.read()


def failure(spec: str) -> str:
    """The one-line ConfigError opening `spec` raises."""
    with pytest.raises(ConfigError) as caught, open_source(parse_source(spec)):
        pass
    message = str(caught.value)
    assert "\n" not in message
    return message


def rewrite_manifest(layout: Path, change: Callable[[dict[str, Any]], None]) -> str:
    """Store a changed copy of the layout's only manifest and point index.json at it."""
    index = json.loads((layout / "index.json").read_bytes())
    descriptor = index["manifests"][0]
    doc = json.loads((layout / "blobs/sha256" / hex_of(descriptor["digest"])).read_bytes())
    change(doc)
    raw = json.dumps(doc).encode()
    descriptor["digest"], descriptor["size"] = write_blob(layout, raw), len(raw)
    (layout / "index.json").write_text(json.dumps(index))
    return str(descriptor["digest"])


# ---- parse_source --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "transport", "path", "ref"),
    [
        ("oci:/build/layout", "oci", "/build/layout", None),
        ("oci:layout:v1.2", "oci", "layout", "v1.2"),
        ("oci:layout:@1", "oci", "layout", "@1"),
        ("oci-archive:image.tar:latest", "oci-archive", "image.tar", "latest"),
        ("docker-archive:app.tar", "docker-archive", "app.tar", None),
        ("docker-archive:app.tar:team/app:1", "docker-archive", "app.tar", "team/app:1"),
        (
            "docker-archive:a.tar:localhost:5000/app:1",
            "docker-archive",
            "a.tar",
            "localhost:5000/app:1",
        ),
        ("docker-archive:app.tar:@2", "docker-archive", "app.tar", "@2"),
        ("  oci:layout:v1\n", "oci", "layout", "v1"),
    ],
)
def test_parse_source_accepts_containers_image_syntax(
    text: str, transport: str, path: str, ref: str | None
) -> None:
    spec = parse_source(text)
    assert spec == SourceSpec(transport=transport, path=Path(path), ref=ref)  # type: ignore[arg-type]
    assert parse_source(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("dir:/tmp/image", "unknown transport 'dir'"),
        ("containers-storage:app", "unknown transport 'containers-storage'"),
        ("image.tar", "no transport"),
        ("", "no transport"),
        ("oci:", "the path is empty"),
        ("oci::latest", "the path is empty"),
        ("oci:layout:", "nothing follows the ':'"),
        ("docker-archive:app.tar:@first", "is not @ and an image number"),
        ("docker-archive:app.tar:app@sha256:" + "a" * 64, "not digest"),
        ("oci:layout:two words", "contains whitespace"),
    ],
)
def test_parse_source_refuses_with_what_is_wrong_and_the_forms(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_source(text)
    message = str(caught.value)
    assert problem in message
    assert FORMS in message
    assert "\n" not in message
    assert "XACCT_SOURCE" not in message


def test_source_spec_is_frozen() -> None:
    spec = parse_source("oci:layout")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.ref = "other"  # type: ignore[misc]


# ---- OCI layout directories ----------------------------------------------------------------


@pytest.mark.parametrize("media_type_field", [True, False])
def test_oci_layout_is_read_byte_for_byte(tmp_path: Path, media_type_field: bool) -> None:
    info = write_oci_layout(tmp_path / "L", LAYERS, manifest_media_type_field=media_type_field)
    image = load_manifest(f"oci:{tmp_path / 'L'}")
    assert image.manifest == info.manifest
    assert image.digest == info.manifest_digest == digest_of(image.manifest)
    assert image.media_type == OCI_MANIFEST  # from the descriptor when the field is omitted
    assert (image.config.digest, image.config.media_type) == (info.config_digest, OCI_CONFIG)
    assert read(image.config) == info.config
    assert [layer.digest for layer in image.layers] == list(info.layer_digests)
    assert [read(layer) for layer in image.layers] == LAYERS
    assert [layer.size for layer in image.layers] == [len(layer) for layer in LAYERS]
    assert image.blobs[-1] is image.config


def test_manifest_type_is_inferred_when_no_one_states_it(tmp_path: Path) -> None:
    write_oci_layout(tmp_path, LAYERS, manifest_media_type_field=False)
    index = json.loads((tmp_path / "index.json").read_bytes())
    del index["manifests"][0]["mediaType"]
    (tmp_path / "index.json").write_text(json.dumps(index))
    assert load_manifest(f"oci:{tmp_path}").media_type == OCI_MANIFEST


def test_gzip_layers_keep_their_media_type(tmp_path: Path) -> None:
    layer = gzip_bytes(LAYERS[0])
    write_oci_layout(tmp_path, [layer])
    (blob,) = load_manifest(f"oci:{tmp_path}").layers
    assert (blob.media_type, blob.digest, read(blob)) == (OCI_LAYER_GZIP, digest_of(layer), layer)


def test_ref_selects_among_several_images(tmp_path: Path) -> None:
    first = write_oci_layout(tmp_path, LAYERS[:1], ref="v1")
    second = write_oci_layout(tmp_path, LAYERS, ref="v2")
    assert load(f"oci:{tmp_path}:v1").digest == first.manifest_digest
    assert load(f"oci:{tmp_path}:v2").digest == second.manifest_digest
    assert load(f"oci:{tmp_path}:@1").digest == second.manifest_digest
    assert "holds 2 images; choose one with :REF, one of v1, v2" in failure(f"oci:{tmp_path}")
    assert "no image named 'v3'; available: v1, v2" in failure(f"oci:{tmp_path}:v3")
    assert "has no image @2; index.json lists 2 (v1, v2)" in failure(f"oci:{tmp_path}:@2")


def test_unnamed_and_duplicate_refs_are_listed_by_number(tmp_path: Path) -> None:
    write_oci_layout(tmp_path, LAYERS[:1], ref="v1")
    write_oci_layout(tmp_path, LAYERS, ref=None)
    assert "one of v1, @1 (unnamed)" in failure(f"oci:{tmp_path}")
    write_oci_layout(tmp_path, LAYERS[1:], ref="v1")
    assert "several images are named 'v1'; choose one of @0, @2" in failure(f"oci:{tmp_path}:v1")


def test_multi_platform_index_comes_with_its_children(tmp_path: Path) -> None:
    info = write_oci_index_layout(tmp_path, ref="multi")
    image = load(f"oci:{tmp_path}:multi")
    assert isinstance(image, ImageIndex)
    assert (image.manifest, image.digest, image.media_type) == (
        info.index,
        info.index_digest,
        OCI_INDEX,
    )
    assert [child.digest for child in image.children] == [
        child.manifest_digest for child in info.children
    ]
    for child, expected in zip(image.children, info.children, strict=True):
        assert child.manifest == expected.manifest
        assert child.media_type == OCI_MANIFEST  # the children omit the field, as umoci does
        assert read(child.config) == expected.config
        assert [read(layer) for layer in child.layers] == list(expected.layers)


def test_index_media_type_falls_back_to_the_descriptor(tmp_path: Path) -> None:
    info = write_oci_index_layout(tmp_path, index_media_type_field=False)
    image = load(f"oci:{tmp_path}")
    assert isinstance(image, ImageIndex)
    assert (image.media_type, image.manifest) == (OCI_INDEX, info.index)


def test_nested_index_is_refused(tmp_path: Path) -> None:
    inner = write_oci_index_layout(tmp_path, ref=None)
    outer = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_INDEX, "digest": inner.index_digest, "size": len(inner.index)}
            ],
        }
    ).encode()
    digest = write_blob(tmp_path, outer)
    index = {"schemaVersion": 2, "manifests": [{"digest": digest, "size": len(outer)}]}
    (tmp_path / "index.json").write_text(json.dumps(index))
    assert f"nests another index ({inner.index_digest})" in failure(f"oci:{tmp_path}")


def test_index_child_missing_is_named(tmp_path: Path) -> None:
    info = write_oci_index_layout(tmp_path)
    missing = info.children[1].manifest_digest
    (tmp_path / "blobs/sha256" / hex_of(missing)).unlink()
    assert f"manifest {missing} is missing" in failure(f"oci:{tmp_path}")


def test_blobs_open_fresh_handles_that_read_in_parallel(tmp_path: Path) -> None:
    layers = [random_layer(300_000, seed) for seed in range(6)]
    write_oci_layout(tmp_path / "L", layers)
    write_oci_archive(tmp_path / "L.tar", tmp_path / "L")
    image = load_manifest(f"oci-archive:{tmp_path / 'L.tar'}")
    first, second = image.layers[0].open(), image.layers[0].open()
    with first, second:
        assert first.read(100) == second.read(100) == layers[0][:100]
        assert first.read(50) == layers[0][100:150]

    def digest(blob: Blob) -> str:
        with blob.open() as stream:
            hasher = hashlib.sha256()
            while chunk := stream.read(7919):
                hasher.update(chunk)
        return "sha256:" + hasher.hexdigest()

    blobs = list(image.blobs) * 3
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(digest, blobs)) == [blob.digest for blob in blobs]


# ---- bad OCI layouts -----------------------------------------------------------------------


def test_missing_and_misnamed_layout_paths(tmp_path: Path) -> None:
    assert "no such OCI layout directory" in failure(f"oci:{tmp_path / 'absent'}")
    (tmp_path / "image.tar").write_bytes(b"x")
    assert "is a file, not an OCI layout directory (oci-archive:" in failure(
        f"oci:{tmp_path / 'image.tar'}"
    )
    assert "oci-layout is missing" in failure(f"oci:{tmp_path}")


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("oci-layout", b'{"imageLayoutVersion":"2.0.0"}', "unsupported imageLayoutVersion '2.0.0'"),
        ("oci-layout", b"[]", "oci-layout is not a JSON object"),
        ("index.json", b"{not json", "index.json is not valid JSON"),
        ("index.json", b'["a"]', "index.json is not a JSON object"),
        ("index.json", b"\xff\xfe\x00", "index.json is not valid JSON"),
        ("index.json", b"[" * 100_000, "index.json is not valid JSON"),
        ("index.json", b'{"schemaVersion":2}', "index.json has no 'manifests' list"),
        ("index.json", b'{"schemaVersion":2,"manifests":[]}', "index.json lists no images"),
        ("index.json", b'{"manifests":["x"]}', "entry 0 of index.json is not a descriptor"),
    ],
)
def test_bad_layout_metadata(tmp_path: Path, name: str, content: bytes, problem: str) -> None:
    write_oci_layout(tmp_path, LAYERS)
    (tmp_path / name).write_bytes(content)
    message = failure(f"oci:{tmp_path}")
    assert message.startswith(f"{tmp_path}: ")
    assert problem in message


def test_missing_index_json(tmp_path: Path) -> None:
    write_oci_layout(tmp_path, LAYERS)
    (tmp_path / "index.json").unlink()
    assert "index.json is missing" in failure(f"oci:{tmp_path}")


def test_missing_or_resized_blobs_are_named(tmp_path: Path) -> None:
    info = write_oci_layout(tmp_path, LAYERS)
    layer = tmp_path / "blobs/sha256" / hex_of(info.layer_digests[1])
    layer.write_bytes(LAYERS[1] + b"\0")
    message = failure(f"oci:{tmp_path}")
    assert f"blob {info.layer_digests[1]} (in manifest {info.manifest_digest})" in message
    assert f"is {len(LAYERS[1]) + 1} bytes, the manifest says {len(LAYERS[1])}" in message
    layer.unlink()
    assert f"blob {info.layer_digests[1]} (in manifest" in failure(f"oci:{tmp_path}")
    assert "is missing" in failure(f"oci:{tmp_path}")
    (tmp_path / "blobs/sha256" / hex_of(info.config_digest)).unlink()
    assert f"blob {info.config_digest}" in failure(f"oci:{tmp_path}")


def test_manifest_must_match_its_digest(tmp_path: Path) -> None:
    info = write_oci_layout(tmp_path, LAYERS)
    (tmp_path / "blobs/sha256" / hex_of(info.manifest_digest)).write_bytes(
        info.manifest.replace(b"3", b"4", 1)
    )
    assert f"manifest {info.manifest_digest} does not match its digest" in failure(
        f"oci:{tmp_path}"
    )
    (tmp_path / "blobs/sha256" / hex_of(info.manifest_digest)).unlink()
    assert f"manifest {info.manifest_digest} is missing" in failure(f"oci:{tmp_path}")


@pytest.mark.parametrize(
    "digest",
    [
        "sha512:" + "a" * 128,
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:../../../../etc/passwd",
        "sha256:" + "a" * 60 + "/../",
        7,
    ],
)
def test_malformed_blob_digests_are_refused(tmp_path: Path, digest: object) -> None:
    write_oci_layout(tmp_path, LAYERS)

    def change(doc: dict[str, Any]) -> None:
        doc["layers"][0]["digest"] = digest

    rewrite_manifest(tmp_path, change)
    message = failure(f"oci:{tmp_path}")
    assert "layer 0 of manifest sha256:" in message
    assert f"has digest {digest!r}; only sha256: with 64 lowercase hex digits" in message


def test_malformed_index_digest_is_refused(tmp_path: Path) -> None:
    write_oci_layout(tmp_path, LAYERS)
    bad = {"manifests": [{"digest": "sha256:../../../etc/passwd", "size": 1}]}
    (tmp_path / "index.json").write_text(json.dumps(bad))
    assert "entry 0 of index.json has digest 'sha256:../../../etc/passwd'" in failure(
        f"oci:{tmp_path}"
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.update(schemaVersion=1), "is not schemaVersion 2"),
        (lambda d: d.update(mediaType="application/x-other"), "unsupported media type"),
        (lambda d: d.update(mediaType=OCI_INDEX), "has no 'manifests' list"),
        (lambda d: d.pop("layers"), "has no 'layers' list"),
        (lambda d: d.pop("config"), "the config of manifest sha256:"),
        (lambda d: d["layers"][0].pop("mediaType"), "has no mediaType"),
        (lambda d: d["layers"][0].update(size=-1), "has no valid size"),
        (lambda d: d["layers"][0].update(size="12"), "has no valid size"),
        (lambda d: d["config"].update(mediaType=3), "mediaType that is not a string"),
    ],
)
def test_malformed_manifests_are_refused(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], problem: str
) -> None:
    write_oci_layout(tmp_path, LAYERS)
    rewrite_manifest(tmp_path, change)
    assert problem in failure(f"oci:{tmp_path}")


def test_manifests_over_4_mib_are_refused(tmp_path: Path) -> None:
    write_oci_layout(tmp_path, LAYERS)

    def pad(doc: dict[str, Any]) -> None:
        doc["annotations"] = {"padding": "x" * (4 * 1024 * 1024)}

    digest = rewrite_manifest(tmp_path, pad)
    message = failure(f"oci:{tmp_path}")
    assert f"manifest {digest} is " in message
    assert "bytes, over the 4 MiB limit" in message


# ---- oci-archive ---------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_oci_archive_matches_its_layout(tmp_path: Path, compress: bool) -> None:
    info = write_oci_layout(tmp_path / "L", LAYERS, ref="v1")
    write_oci_archive(tmp_path / "L.tar", tmp_path / "L", compress=compress)
    with open_source(parse_source(f"oci-archive:{tmp_path / 'L.tar'}:v1")) as image:
        assert isinstance(image, ImageManifest)
        assert (image.manifest, image.digest) == (info.manifest, info.manifest_digest)
        assert read(image.config) == info.config
        assert [read(layer) for layer in image.layers] == LAYERS


def test_oci_archive_index(tmp_path: Path) -> None:
    info = write_oci_index_layout(tmp_path / "L")
    write_oci_archive(tmp_path / "L.tar", tmp_path / "L")
    image = load(f"oci-archive:{tmp_path / 'L.tar'}")
    assert isinstance(image, ImageIndex)
    assert image.digest == info.index_digest
    assert len(image.children) == 2


def test_compressed_archive_extracts_only_the_layout_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    write_oci_layout(tmp_path / "L", LAYERS)
    (tmp_path / "L" / "README").write_bytes(b"not part of the image\n" * 1000)
    write_oci_archive(tmp_path / "L.tar.gz", tmp_path / "L", compress=True)
    with open_source(parse_source(f"oci-archive:{tmp_path / 'L.tar.gz'}")) as image:
        assert isinstance(image, ImageManifest)
        (extracted,) = scratch.iterdir()
        assert len(list(extracted.iterdir())) == 2 + 4  # index.json, oci-layout, 4 blobs
        assert read(image.layers[0]) == LAYERS[0]
    assert list(scratch.iterdir()) == []
    with pytest.raises(RuntimeError), open_source(parse_source(f"oci-archive:{tmp_path}/L.tar.gz")):
        raise RuntimeError
    assert list(scratch.iterdir()) == []


def test_reading_a_blob_does_not_load_the_archive(tmp_path: Path) -> None:
    big = random_layer(20 * 1024 * 1024, seed=1)
    write_oci_layout(tmp_path / "L", [big])
    write_oci_archive(tmp_path / "L.tar", tmp_path / "L")
    del big
    tracemalloc.start()
    try:
        with open_source(parse_source(f"oci-archive:{tmp_path / 'L.tar'}")) as image:
            assert isinstance(image, ImageManifest)
            with image.layers[0].open() as stream:
                assert len(stream.read(1024)) == 1024
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 512 * 1024


def _layout_entries(tmp_path: Path) -> list[TarEntry]:
    info = write_oci_layout(tmp_path / "L", LAYERS)
    layout = tmp_path / "L"
    entries = [
        TarEntry(path.relative_to(layout).as_posix(), path.read_bytes())
        for path in sorted(layout.rglob("*"))
        if path.is_file() and hex_of(info.layer_digests[0]) not in path.name
    ]
    return [*entries, TarEntry(f"blobs/sha256/{hex_of(info.layer_digests[0])}", LAYERS[0])]


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    ("evil", "problem"),
    [
        (TarEntry("../escape", b"x"), "member '../escape' has an unsafe path"),
        (TarEntry("blobs/../../escape", b"x"), "member 'blobs/../../escape' has an unsafe path"),
        (TarEntry("/etc/escape", b"x"), "member '/etc/escape' has an unsafe path"),
    ],
)
def test_members_that_escape_are_refused(
    tmp_path: Path, compress: bool, evil: TarEntry, problem: str
) -> None:
    archive = write_tar(tmp_path / "a.tar", [evil, *_layout_entries(tmp_path)], compress=compress)
    message = failure(f"oci-archive:{archive}")
    assert message.startswith(f"{archive}: ")
    assert problem in message
    assert not (tmp_path.parent / "escape").exists()


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize(
    ("link", "problem"),
    [
        (TarEntry("", kind="symlink", link="/etc/passwd"), "is a link to outside the archive"),
        (TarEntry("", kind="symlink", link="../../../x"), "is a link to outside the archive"),
        (TarEntry("", kind="hardlink", link="../x"), "is a link to outside the archive"),
        (TarEntry("", kind="symlink", link="absent"), "which is absent"),
        (TarEntry("", kind="symlink", link="loop"), "is a link loop"),
    ],
)
def test_links_used_as_blobs_must_stay_inside(
    tmp_path: Path, compress: bool, link: TarEntry, problem: str
) -> None:
    entries = _layout_entries(tmp_path)
    name = entries[-1].name
    loop = TarEntry("blobs/sha256/loop", kind="symlink", link=name.rsplit("/", 1)[1])
    entries[-1] = dataclasses.replace(link, name=name)
    archive = write_tar(tmp_path / "a.tar", [*entries, loop], compress=compress)
    message = failure(f"oci-archive:{archive}")
    assert f"member blobs/sha256/{name.rsplit('/', 1)[1][:8]}" in message
    assert problem in message


@pytest.mark.parametrize("compress", [False, True])
def test_links_inside_the_archive_are_followed(tmp_path: Path, compress: bool) -> None:
    entries = _layout_entries(tmp_path)
    name = entries[-1].name
    entries[-1] = TarEntry("stash/layer.tar", LAYERS[0])
    entries.append(TarEntry(name, kind="symlink", link="../../stash/layer.tar"))
    archive = write_tar(tmp_path / "a.tar", entries, compress=compress)
    if compress:  # only the layout is extracted, so the link leads to nothing
        assert "which is absent" in failure(f"oci-archive:{archive}")
        return
    assert read(load_manifest(f"oci-archive:{archive}").layers[0]) == LAYERS[0]
    entries[-1] = TarEntry(name, kind="hardlink", link="stash/layer.tar")
    write_tar(archive, entries)
    assert read(load_manifest(f"oci-archive:{archive}").layers[0]) == LAYERS[0]


def test_unreadable_archives(tmp_path: Path) -> None:
    assert f"{tmp_path / 'absent.tar'}: no such file" in failure(
        f"oci-archive:{tmp_path / 'absent.tar'}"
    )
    assert "is a directory, expected a tar archive" in failure(f"docker-archive:{tmp_path}")
    (tmp_path / "empty.tar").write_bytes(b"")
    assert "not a valid tar archive" in failure(f"oci-archive:{tmp_path / 'empty.tar'}")
    (tmp_path / "noise.tar").write_bytes(bytes(range(256)) * 40)
    assert "not a valid tar archive" in failure(f"oci-archive:{tmp_path / 'noise.tar'}")
    (tmp_path / "noise.tar.gz").write_bytes(gzip_bytes(bytes(range(256)) * 40))
    assert "not a valid tar archive" in failure(f"oci-archive:{tmp_path / 'noise.tar.gz'}")
    (tmp_path / "a.tar.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 100)
    assert "zstd-compressed archives are not supported" in failure(
        f"oci-archive:{tmp_path / 'a.tar.zst'}"
    )


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_archives(tmp_path: Path, compress: bool) -> None:
    big = random_layer(200_000, seed=2)
    write_oci_layout(tmp_path / "L", [big])
    data = tar_bytes(
        [
            TarEntry(p.relative_to(tmp_path / "L").as_posix(), p.read_bytes())
            for p in sorted((tmp_path / "L").rglob("*"))
            if p.is_file()
        ]
    )
    cut = data[: data.index(big[1000:1100]) + 100]
    (tmp_path / "cut.tar").write_bytes(gzip_bytes(cut) if compress else cut)
    assert "the tar archive is truncated" in failure(f"oci-archive:{tmp_path / 'cut.tar'}")


def test_archive_without_a_layout(tmp_path: Path) -> None:
    archive = write_tar(
        tmp_path / "a.tar", [TarEntry("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]
    )
    assert f"{archive}: index.json is missing" in failure(f"oci-archive:{archive}")


# ---- docker-archive ------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_classic_docker_archive_gets_a_synthesised_oci_manifest(
    tmp_path: Path, compress: bool
) -> None:
    (info,) = write_docker_archive_classic(tmp_path / "d.tar", LAYERS, compress=compress)
    with open_source(parse_source(f"docker-archive:{tmp_path / 'd.tar'}")) as image:
        assert isinstance(image, ImageManifest)
        assert read(image.config) == info.config  # byte for byte: the image ID does not change
        assert [read(layer) for layer in image.layers] == LAYERS
    doc = json.loads(image.manifest)
    assert list(doc) == ["schemaVersion", "mediaType", "config", "layers"]
    assert image.manifest == json.dumps(doc, separators=(",", ":")).encode()
    assert (image.media_type, image.digest) == (OCI_MANIFEST, digest_of(image.manifest))
    assert doc["config"] == {
        "mediaType": OCI_CONFIG,
        "digest": info.config_digest,
        "size": len(info.config),
    }
    assert [layer.digest for layer in image.layers] == list(info.diff_ids)
    assert {layer.media_type for layer in image.layers} == {OCI_LAYER_TAR}
    assert doc["layers"] == [
        {"mediaType": OCI_LAYER_TAR, "digest": d, "size": len(x)}
        for d, x in zip(info.diff_ids, LAYERS, strict=True)
    ]


def test_synthesised_manifest_is_deterministic(tmp_path: Path) -> None:
    write_docker_archive_classic(tmp_path / "a.tar", LAYERS)
    write_docker_archive_classic(tmp_path / "b.tar.gz", LAYERS, compress=True)
    digests = {
        load(f"docker-archive:{tmp_path / n}").digest for n in ("a.tar", "a.tar", "b.tar.gz")
    }
    assert len(digests) == 1


def test_gzip_layer_files_are_hashed(tmp_path: Path) -> None:
    write_docker_archive_classic(tmp_path / "d.tar", LAYERS, gzip_layers=True)
    image = load_manifest(f"docker-archive:{tmp_path / 'd.tar'}")
    assert [(x.media_type, x.digest) for x in image.layers] == [
        (OCI_LAYER_GZIP, digest_of(gzip_bytes(layer))) for layer in LAYERS
    ]


def test_repeated_layer_saved_as_a_symlink(tmp_path: Path) -> None:
    (info,) = write_docker_archive_classic(tmp_path / "d.tar", [LAYERS[0], LAYERS[1], LAYERS[0]])
    image = load_manifest(f"docker-archive:{tmp_path / 'd.tar'}")
    assert [read(layer) for layer in image.layers] == [LAYERS[0], LAYERS[1], LAYERS[0]]
    assert [layer.digest for layer in image.layers] == list(info.diff_ids)


@pytest.mark.parametrize("writer", [write_docker_archive_classic, write_docker_archive_oci])
def test_docker_archive_with_several_images(tmp_path: Path, writer: Any) -> None:
    other = DockerImage(LAYERS[1:], ["team/other:2", "registry.example.com/team/other:2"])
    untagged = DockerImage(LAYERS[:1], [])
    infos = writer(tmp_path / "d.tar", LAYERS, "team/app:1", extra_images=[other, untagged])
    spec = f"docker-archive:{tmp_path / 'd.tar'}"
    message = failure(spec)
    assert "holds 3 images; choose one with :name:tag or :@N" in message
    assert "@0 team/app:1; @1 team/other:2, registry.example.com/team/other:2; @2 (untagged)" in (
        message
    )
    for ref, number in [
        ("team/app:1", 0),
        ("docker.io/team/other:2", 1),
        ("registry.example.com/team/other:2", 1),
        ("@2", 2),
    ]:
        assert load_manifest(f"{spec}:{ref}").config.digest == infos[number].config_digest
    assert "has no image tagged 'team/app:2'; available: @0 team/app:1" in failure(
        f"{spec}:team/app:2"
    )
    assert "has no image @3; manifest.json lists 3" in failure(f"{spec}:@3")


@pytest.mark.parametrize(
    ("ref", "full"),
    [
        ("app", "docker.io/library/app:latest"),
        ("app:1", "docker.io/library/app:1"),
        ("team/app:1", "docker.io/team/app:1"),
        ("docker.io/team/app:1", "docker.io/team/app:1"),
        ("index.docker.io/library/app:1", "docker.io/library/app:1"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("localhost/app:2", "localhost/app:2"),
        ("registry.example.com/a/b:3", "registry.example.com/a/b:3"),
    ],
)
def test_repo_tags_compare_as_docker_compares_them(ref: str, full: str) -> None:
    assert normalise_tag(ref) == full


def test_skopeo_style_repo_tags(tmp_path: Path) -> None:
    (info,) = write_docker_archive_classic(tmp_path / "d.tar", LAYERS, "docker.io/team/app:t")
    image = load_manifest(f"docker-archive:{tmp_path / 'd.tar'}:team/app:t")
    assert image.config.digest == info.config_digest


@pytest.mark.parametrize("compress", [False, True])
def test_docker_25_archive_pushes_its_own_oci_manifest(tmp_path: Path, compress: bool) -> None:
    (info,) = write_docker_archive_oci(tmp_path / "d.tar", LAYERS, compress=compress)
    with open_source(parse_source(f"docker-archive:{tmp_path / 'd.tar'}")) as image:
        assert isinstance(image, ImageManifest)
        assert image.manifest == info.oci_manifest
        assert image.digest == info.oci_manifest_digest
        assert read(image.config) == info.config
        assert [read(layer) for layer in image.layers] == LAYERS


@pytest.mark.parametrize("bug", ["empty", "reversed"])
def test_docker_25_0_0_manifests_without_their_layers_are_rebuilt(tmp_path: Path, bug: Any) -> None:
    (info,) = write_docker_archive_oci(tmp_path / "d.tar", LAYERS, oci_layers=bug)
    image = load_manifest(f"docker-archive:{tmp_path / 'd.tar'}")
    assert image.digest != info.oci_manifest_digest
    assert image.config.digest == info.config_digest
    assert [layer.digest for layer in image.layers] == list(info.diff_ids)
    assert [read(layer) for layer in image.layers] == LAYERS


def test_docker_25_index_without_manifests_falls_back(tmp_path: Path) -> None:
    (info,) = write_docker_archive_oci(tmp_path / "d.tar", LAYERS)
    with tarfile.open(tmp_path / "d.tar") as archive:
        entries = [
            TarEntry(m.name, kind="dir")
            if m.isdir()
            else TarEntry(m.name, b"" if (f := archive.extractfile(m)) is None else f.read())
            for m in archive
        ]
    index = TarEntry("index.json", b'{"schemaVersion":2,"manifests":null}')  # moby#47210
    write_tar(tmp_path / "d.tar", [e if e.name != "index.json" else index for e in entries])
    image = load_manifest(f"docker-archive:{tmp_path / 'd.tar'}")
    assert image.config.digest == info.config_digest
    assert [layer.digest for layer in image.layers] == list(info.diff_ids)


def test_containerd_store_archive_with_a_partial_index(tmp_path: Path) -> None:
    layout = tmp_path / "L"
    child = write_image_blobs(layout, LAYERS)
    absent = digest_of(b"the arm64 manifest, not saved")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": absent, "size": 29},
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": child.manifest_digest,
                    "size": len(child.manifest),
                },
            ],
        }
    ).encode()
    index_digest = write_blob(layout, index)
    entries = [
        TarEntry(p.relative_to(layout).as_posix(), p.read_bytes())
        for p in sorted(layout.rglob("*"))
        if p.is_file()
    ]
    top = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": OCI_INDEX, "digest": index_digest, "size": len(index)}],
    }
    listing = [
        {
            "Config": f"blobs/sha256/{hex_of(child.config_digest)}",
            "RepoTags": ["team/app:1"],
            "Layers": [f"blobs/sha256/{hex_of(d)}" for d in child.layer_digests],
        }
    ]
    entries += [
        TarEntry("index.json", json.dumps(top).encode()),
        TarEntry("manifest.json", json.dumps(listing).encode()),
    ]
    archive = write_tar(tmp_path / "d.tar", entries)
    image = load_manifest(f"docker-archive:{archive}")
    assert (image.digest, image.manifest) == (child.manifest_digest, child.manifest)


@pytest.mark.parametrize(
    ("listing", "problem"),
    [
        (b"{}", "manifest.json is not a JSON list"),
        (b"[]", "manifest.json lists no images"),
        (b"[1]", "manifest.json entry 0 is not a JSON object"),
        (b'[{"Layers":[]}]', "manifest.json entry 0 has no Config"),
        (b'[{"Config":"c.json"}]', "manifest.json entry 0 has no Layers list"),
        (b'[{"Config":"c.json","Layers":[""]}]', "has no Layers list of file names"),
        (b'[{"Config":"c.json","Layers":[],"RepoTags":"a:1"}]', "RepoTags that are not a list"),
        (b'[{"Config":"c.json","Layers":[]}]', "image config c.json is missing"),
        (b'[{"Config":"../../etc/passwd","Layers":[]}]', "refusing path '../../etc/passwd'"),
        (b"[" + b" " * (5 * 1024 * 1024) + b"]", "manifest.json is 5242882 bytes, over the 4 MiB"),
    ],
)
def test_bad_manifest_json(tmp_path: Path, listing: bytes, problem: str) -> None:
    archive = write_tar(tmp_path / "d.tar", [TarEntry("manifest.json", listing)])
    message = failure(f"docker-archive:{archive}")
    assert message.startswith(f"{archive}: ")
    assert problem in message


def test_docker_archive_without_manifest_json(tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "L", LAYERS)
    archive = write_oci_archive(tmp_path / "L.tar", tmp_path / "L")
    assert "manifest.json is missing (is this a `docker save` archive?)" in failure(
        f"docker-archive:{archive}"
    )


def _classic_with(tmp_path: Path, config: object, drop: str = "") -> Path:
    entries: list[TarEntry] = []
    raw = json.dumps(config).encode()
    layers = [f"l{n}/layer.tar" for n in range(len(LAYERS))]
    entries += [
        TarEntry(name, layer) for name, layer in zip(layers, LAYERS, strict=True) if name != drop
    ]
    listing = [{"Config": "c.json", "RepoTags": ["team/app:1"], "Layers": layers}]
    entries += [TarEntry("c.json", raw), TarEntry("manifest.json", json.dumps(listing).encode())]
    return write_tar(tmp_path / "d.tar", entries)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (
            {"rootfs": {"diff_ids": [digest_of(LAYERS[0])]}},
            "lists 2 layers but image config c.json has 1 rootfs.diff_ids",
        ),
        ({"os": "linux"}, "image config c.json has no rootfs.diff_ids"),
        ([], "image config c.json is not a JSON object"),
        (
            {"rootfs": {"diff_ids": ["md5:abc", "sha256:" + "0" * 64]}},
            "diff_id 0 of image config c.json has digest 'md5:abc'",
        ),
    ],
)
def test_bad_classic_configs(tmp_path: Path, config: Any, problem: str) -> None:
    assert problem in failure(f"docker-archive:{_classic_with(tmp_path, config)}")


def test_layer_named_by_manifest_json_must_exist(tmp_path: Path) -> None:
    config = {"rootfs": {"diff_ids": [digest_of(x) for x in LAYERS]}}
    archive = _classic_with(tmp_path, config, drop="l1/layer.tar")
    assert "layer l1/layer.tar named by manifest.json is missing" in failure(
        f"docker-archive:{archive}"
    )
