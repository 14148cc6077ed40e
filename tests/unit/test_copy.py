"""`copy` settings and command, and docker:// sources, against in-process registries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gitlab_xacct.cli import main
from gitlab_xacct.config.options import COPY_OPTIONS
from gitlab_xacct.config.source import parse_source
from gitlab_xacct.errors import ConfigError
from gitlab_xacct.jobs.copy import CopySettings, copy
from gitlab_xacct.registry.client import DEFAULT_CHUNK_SIZE, Registry
from gitlab_xacct.registry.image import DOCKER_MANIFEST, OCI_INDEX, ImageIndex, ImageManifest
from gitlab_xacct.registry.remote import Access
from gitlab_xacct.registry.sources import open_source
from tests.imagefactory import make_layer, write_oci_index_layout, write_oci_layout
from tests.unit.httpfake import FakeRegistry, digest

DEST = "docker://registry.example.com/team/app:1"


def settings(env: dict[str, str] | None = None, **flags: object) -> CopySettings:
    flags.setdefault("src", "oci:/layout")
    flags.setdefault("dest", DEST)
    return CopySettings.from_env({"HOME": "/nonexistent", **(env or {})}, flags)


def test_tags_are_dest_first_then_extra_ones_without_repeats() -> None:
    assert settings(extra_tags=["2", "1", "latest"]).tags == ("1", "2", "latest")
    assert settings(env={"XACCT_COPY_TAGS": "a, b c"}).tags == ("1", "a", "b", "c")
    assert settings(dest="docker://registry.example.com/team/app", extra_tags=["x"]).tags == ("x",)


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        ({"dest": "docker://registry.example.com/team/app"}, "DEST: docker://registry.example."),
        ({"dest": f"docker://r.example.com/a@sha256:{'a' * 64}"}, "names a digest; name a tag"),
        ({"dest": "oci:/somewhere"}, "DEST: 'oci:/somewhere': expected docker://HOST/REPO"),
        ({"src": "dir:/x"}, "SRC: 'dir:/x': unknown transport 'dir'"),
        ({"src": ""}, "SRC: not given"),
        ({"extra_tags": ["bad tag"]}, "--tag: 'bad tag' is not a valid image tag"),
        ({"chunk_size": "lots"}, "--chunk-size: 'lots' is not a size"),
        ({"dest_creds": "NO_SUCH_VARIABLE"}, "--dest-creds: names the variable NO_SUCH_VARIABLE"),
    ],
)
def test_bad_settings_are_one_line_config_errors(flags: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(None, **flags)
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "size"),
    [("0", 0), ("65536", 65536), ("16M", 16 * 1024**2), ("1g", 1024**3), ("512 KiB", 512 * 1024)],
)
def test_chunk_size(value: str, size: int) -> None:
    assert settings(env={"XACCT_CHUNK_SIZE": value}).destination_access.chunk_size == size
    assert settings().destination_access.chunk_size == DEFAULT_CHUNK_SIZE


def test_a_misspelt_variable_gets_a_did_you_mean() -> None:
    with pytest.raises(ConfigError, match="did you mean XACCT_SRC_CREDS"):
        settings(env={"XACCT_SRC_CRED": "a:b"})


def test_accesses_say_where_the_credentials_came_from() -> None:
    env = {"CI_REGISTRY": "registry.example.com", "CI_JOB_TOKEN": "job-token-7"}
    chosen = settings(
        env=env,
        src="docker://source.example.com/x:1",
        src_creds="u:p-1",
        insecure_registries=["Source.Example.com"],
    )
    assert chosen.source_access is not None
    assert chosen.source_access.origin == "--src-creds"
    assert chosen.source_access.insecure_registries == frozenset({"source.example.com"})
    assert chosen.destination_access.origin == "CI_JOB_TOKEN"
    assert settings().source_access is None  # not a registry source
    assert ("destination login", "CI_JOB_TOKEN") in chosen.summary()


def test_help_shows_the_positionals_and_the_variable_of_every_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["copy", "--help"], env={})
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "SRC DEST" in text
    for option in COPY_OPTIONS:
        assert option.flag in text
        assert f"[{option.env}]" in text


def test_a_missing_source_is_exit_2_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["copy", "oci:/nonexistent/layout", DEST], env={"HOME": "/nonexistent"})
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("gitlab-xacct: error: SRC: ")
    assert err.count("\n") == 1


# None of these may load before the copy has work for them: AWS is push's; the rest wait for
# an archive or a mistake. (The HTTP stack is requests, loaded with the registry client.)
_NOT_AT_START = {"boto3", "botocore", "subprocess", "tarfile", "difflib"}


def test_copy_starts_without_heavy_imports() -> None:
    code = (
        "import sys; from gitlab_xacct.cli import main; import gitlab_xacct.jobs.copy; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {_NOT_AT_START!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


# ---- in-process end to end -----------------------------------------------------------------


@pytest.fixture
def registries(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeRegistry]:
    """Each host's fake registry; `connect` hands out clients of them instead of sockets."""
    fakes: dict[str, FakeRegistry] = {}

    def connect(host: str, access: Access, *, auth_hint: str, pool: int = 8) -> Registry:
        server = fakes.setdefault(host, FakeRegistry())
        return server.client(
            f"https://{host}", chunk_size=access.chunk_size, auth_hint=auth_hint, pool=pool
        )

    monkeypatch.setattr("gitlab_xacct.registry.remote.connect", connect)
    monkeypatch.setattr("gitlab_xacct.jobs.copy.connect", connect)
    return fakes


def test_copies_a_layout_into_a_registry_byte_for_byte(
    tmp_path: Path, registries: dict[str, FakeRegistry]
) -> None:
    info = write_oci_layout(tmp_path / "layout", [make_layer({"a": b"1"}), make_layer({"b": b"2"})])
    result = copy(
        settings(src=f"oci:{tmp_path / 'layout'}:latest", extra_tags=["also"], chunk_size="1K"),
        env={},
    )
    assert result.digest == info.manifest_digest
    assert result.tagged("also") == f"registry.example.com/team/app:also@{info.manifest_digest}"
    server = registries["registry.example.com"]
    assert server.manifests[("team/app", "1")][0] == info.manifest
    assert server.requests_to("PATCH")  # the 1 KiB chunk size reached the uploads


def test_copy_filters_platforms_and_takes_the_engine_options(
    tmp_path: Path, registries: dict[str, FakeRegistry]
) -> None:
    layout = write_oci_index_layout(tmp_path / "multi")
    chosen = settings(
        src=f"oci:{tmp_path / 'multi'}:latest", platforms=["linux/arm64"], parallelism="2"
    )
    assert chosen.engine.parallelism == 2
    result = copy(chosen, env={})
    assert result.digest != layout.index_digest  # rewritten: one platform of two
    pushed = json.loads(registries["registry.example.com"].manifests[("team/app", "1")][0])
    assert [m["platform"]["architecture"] for m in pushed["manifests"]] == ["arm64"]
    with pytest.raises(ConfigError, match=r"^--platform: 'linux/arm46' .* did you mean arm64"):
        settings(platforms=["linux/arm46"])


def test_a_docker_source_index_is_read_with_its_children_by_digest(
    tmp_path: Path, registries: dict[str, FakeRegistry]
) -> None:
    layout = write_oci_index_layout(tmp_path / "multi")
    source = registries.setdefault("source.example.com", FakeRegistry())
    source.manifests[("team/multi", "v1")] = (layout.index, OCI_INDEX)
    for child in layout.children:
        source.manifests[("team/multi", child.manifest_digest)] = (child.manifest, "")
        for data in (*child.layers, child.config):
            source.put_blob("team/multi", data)

    spec = parse_source("docker://source.example.com/team/multi:v1")
    with open_source(spec, env={"HOME": str(tmp_path)}) as image:
        assert isinstance(image, ImageIndex)
        assert (image.manifest, image.digest) == (layout.index, layout.index_digest)
        for got, want in zip(image.children, layout.children, strict=True):
            assert (got.manifest, got.digest) == (want.manifest, want.manifest_digest)
            with got.layers[0].open() as stream:
                assert stream.read() == want.layers[0]
    gets = [s.path for s in source.requests_to("GET", "/manifests/")]
    assert gets == ["/v2/team/multi/manifests/v1"] + [
        f"/v2/team/multi/manifests/{c.manifest_digest}" for c in layout.children
    ]


SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
NO_CONFIG = b'{"schemaVersion": 2, "mediaType": "%s"}' % DOCKER_MANIFEST.encode()


@pytest.mark.parametrize(
    ("manifest", "media_type", "problem"),
    [
        (None, "", "no such image"),
        (b'{"schemaVersion": 1, "fsLayers": []}', SCHEMA1, "unsupported media type"),
        (NO_CONFIG, DOCKER_MANIFEST, "the config of manifest sha256:"),
    ],
)
def test_unusable_docker_sources_are_exit_2(
    tmp_path: Path,
    registries: dict[str, FakeRegistry],
    manifest: bytes | None,
    media_type: str,
    problem: str,
) -> None:
    source = registries.setdefault("source.example.com", FakeRegistry())
    if manifest is not None:
        source.manifests[("team/app", "v1")] = (manifest, media_type)
    spec = parse_source("docker://source.example.com/team/app:v1")
    with pytest.raises(ConfigError) as caught, open_source(spec, env={"HOME": str(tmp_path)}):
        pass
    assert problem in str(caught.value)
    assert str(caught.value).startswith("docker://source.example.com/team/app:v1: ")


def test_a_docker_source_manifest_is_kept_byte_for_byte(
    tmp_path: Path, registries: dict[str, FakeRegistry]
) -> None:
    source = registries.setdefault("source.example.com", FakeRegistry())
    config = source.put_blob("team/app", b'{"os": "linux"}')
    layer = source.put_blob("team/app", b"layer bytes")
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": config, "size": 15},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": layer, "size": 11}],
    }  # fmt: skip
    raw = json.dumps(doc, indent=7).encode()
    source.manifests[("team/app", "v1")] = (raw, DOCKER_MANIFEST)
    with open_source(parse_source("docker://source.example.com/team/app:v1"), env={}) as image:
        assert isinstance(image, ImageManifest)
        assert (image.manifest, image.digest, image.media_type) == (
            raw,
            digest(raw),
            DOCKER_MANIFEST,
        )
        assert [b.digest for b in image.blobs] == [layer, config]
