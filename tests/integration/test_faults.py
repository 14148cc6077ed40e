"""Faults injected for real between the CLI and its peers, and what the user gets.

A `FaultProxy` on loopback sits between `gitlab-xacct` (run as a subprocess, as in a job) and
docker-registry or moto; it resets connections mid-body, answers bursts of 429/5xx with
Retry-After, stalls, trickles, and lies about digests. Each test asserts the exit code and the
one line a user reads, and after every push that succeeds, that what the registry serves
(read back with skopeo, an independent client) is byte for byte the source: the manifest and
every blob, so the same as a clean push.

Figures for docs/reliability.md are counted per test in FIGURES and printed at the end of the
module (`pytest -s`): faults injected, pushes completed, bytes compared, failures checked.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.imagefactory import LayoutInfo, random_layer, write_oci_index_layout, write_oci_layout
from tests.integration.conftest import CLI, Job
from tests.standins.faultproxy import (
    Blackhole,
    FaultProxy,
    RequestInfo,
    aws_json_error,
    aws_query_error,
)

MIB = 1024 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
BLOB = re.compile(r"^/v2/.+/blobs/sha256:[0-9a-f]{64}$")
UPLOAD = re.compile(r"/blobs/uploads/")
MANIFEST = re.compile(r"/manifests/")
WRONG = "sha256:" + "0" * 64
BASIC = {"WWW-Authenticate": 'Basic realm="standin"'}

FIGURES: dict[str, Counter[str]] = {}  # test (without parameters) -> figures
_CURRENT = ["?"]


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    total: Counter[str] = sum(FIGURES.values(), Counter())
    print("\ntest_faults figures:", dict(sorted(total.items())))
    for name, figures in FIGURES.items():
        print(f"  {name}: {dict(sorted(figures.items()))}")


@pytest.fixture(autouse=True)
def _test_name(request: pytest.FixtureRequest) -> None:
    _CURRENT[0] = request.node.originalname


def count(figure: str, amount: int = 1) -> None:
    FIGURES.setdefault(_CURRENT[0], Counter())[figure] += amount


@dataclass(frozen=True)
class Image:
    root: Path
    info: LayoutInfo

    @property
    def source(self) -> str:
        return f"oci:{self.root}:latest"

    @property
    def big(self) -> str:
        """The digest of the 3 MiB layer, the one whose upload the faults aim at."""
        return self.info.layer_digests[0]

    def blobs(self) -> dict[str, bytes]:
        return {
            self.info.config_digest: self.info.config,
            **dict(zip(self.info.layer_digests, self.info.layers, strict=True)),
        }


@pytest.fixture
def image(tmp_path: Path, request: pytest.FixtureRequest) -> Image:
    """An image of its own per test (new blobs: every push uploads them): 3 MiB and 2 KB."""
    seed = zlib.crc32(request.node.name.encode())
    layers = [random_layer(3 * MIB, seed), random_layer(2000, seed + 1)]
    return Image(tmp_path / "layout", write_oci_layout(tmp_path / "layout", layers))


Predicate = Callable[[RequestInfo], bool]


def put_of(digest: str) -> Predicate:
    """A predicate: the request that completes the upload of `digest` (`?digest=` in it)."""
    hex_digest = digest.removeprefix("sha256:")
    return lambda info: hex_digest in info.query


def nth(number: int) -> Predicate:
    """A predicate true for the `number`-th request it is asked about (1-based)."""
    seen = [0]

    def matches(_info: RequestInfo) -> bool:
        seen[0] += 1
        return seen[0] == number

    return matches


def plain_env(job: Job) -> dict[str, str]:
    """For `copy`: no AWS, no XACCT_* of the push job."""
    return {"PATH": job.env()["PATH"], "HOME": str(job.home)}


def creds(job: Job) -> str:
    return f"{job.registry.username}:{job.registry.password}"


def seed(job: Job, image: Image, repository: str) -> None:
    """The image at REPOSITORY:1 in the registry, for docker:// sources (copy, no AWS)."""
    seeded = subprocess.run(
        [CLI, "copy", image.source, f"docker://{job.registry.host}/{repository}:1",
         "--dest-creds", creds(job)],
        env=plain_env(job), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert seeded.returncode == 0, seeded.stderr


def push(job: Job, proxy_url: str, image: Image, tag: str, **extra: str) -> Run:
    started = time.monotonic()
    env = job.env(
        XACCT_SOURCE=image.source, XACCT_TAGS=tag, XACCT_REGISTRY_ENDPOINT=proxy_url, **extra
    )
    result = job.push(env=env)
    return Run(result, time.monotonic() - started)


@dataclass(frozen=True)
class Run:
    result: subprocess.CompletedProcess[str]
    seconds: float

    @property
    def code(self) -> int:
        return self.result.returncode

    @property
    def err(self) -> str:
        return self.result.stderr


def succeeded(run: Run, proxy: FaultProxy, *, faults: int) -> None:
    assert run.code == 0, run.err
    assert proxy.injected == faults, proxy.injected
    assert "Traceback" not in run.err
    count("faults injected", proxy.injected)
    count("pushes completed")


def failed(run: Run, proxy: FaultProxy | None, code: int) -> str:
    """The one error line of a failed run (exit `code`, no traceback)."""
    assert run.code == code, run.err
    assert "Traceback" not in run.err
    errors = [line for line in run.err.splitlines() if line.startswith("gitlab-xacct: error:")]
    assert len(errors) == 1, run.err
    if proxy is not None:
        count("faults injected", proxy.injected)
    count("failures checked")
    return errors[0]


def same_as_source(job: Job, reference: str, image: Image, tmp_path: Path) -> None:
    """What the registry serves under `reference` is the source, byte for byte: the manifest
    (skopeo inspect --raw) and every blob (skopeo copy to a `dir:`, which keeps blobs as
    served; an `oci:` destination would compress the uncompressed layers)."""
    raw = job.skopeo_inspect(reference, raw=True)
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout.encode() == image.info.manifest
    out = tmp_path / f"readback-{reference.replace('/', '_').replace(':', '_')}"
    creds = f"{job.registry.username}:{job.registry.password}"
    copied = subprocess.run(
        ["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--src-creds", creds,
         f"docker://{job.registry.host}/{reference}", f"dir:{out}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    for digest, data in image.blobs().items():
        assert (out / digest.removeprefix("sha256:")).read_bytes() == data
    assert (out / "manifest.json").read_bytes() == image.info.manifest
    count("bytes compared", len(image.info.manifest) + sum(map(len, image.blobs().values())))
    count("read-backs")


def untagged(job: Job, reference: str) -> None:
    assert job.skopeo_inspect(reference).returncode != 0, f"{reference} was tagged"


# ---- the fast path stays fast ----------------------------------------------------------------


def test_a_healthy_registry_gets_no_extra_request_and_no_wait(job: Job, image: Image) -> None:
    with FaultProxy(job.registry.url) as proxy:
        run = push(job, proxy.url, image, "healthy")
        seen = Counter(
            (r.method, "manifest" if MANIFEST.search(r.path) else
             "upload" if UPLOAD.search(r.path) else "blob" if BLOB.search(r.path) else r.path)
            for r in proxy.history
        )  # fmt: skip
        succeeded(run, proxy, faults=0)
    blobs = len(image.blobs())
    assert seen == Counter({
        ("GET", "/v2/"): 2,  # the Basic challenge, then the login check
        ("HEAD", "manifest"): 1,  # is the tag there already?
        ("HEAD", "blob"): blobs, ("POST", "upload"): blobs, ("PUT", "upload"): blobs,
        ("PUT", "manifest"): 1,
    })  # fmt: skip
    for retried in ("trying again", "starting it over", "no answer"):
        assert retried not in run.err


# ---- connection reset in the middle of a blob upload ---------------------------------------


@pytest.mark.parametrize(
    ("point", "after"),
    [("early", 1000), ("middle", 3 * MIB // 2), ("last bytes", -100)],
)
def test_reset_mid_put_starts_the_blob_over(
    job: Job, image: Image, tmp_path: Path, *, point: str, after: int
) -> None:
    """One streamed PUT (monolithic), reset with part of the body at the registry."""
    with FaultProxy(job.registry.url) as proxy:
        proxy.reset_next(1, after_bytes=after, method="PUT", path=UPLOAD,
                         predicate=put_of(image.big))  # fmt: skip
        run = push(job, proxy.url, image, "reset-put")
        puts = [r for r in proxy.history if r.method == "PUT" and image.big[7:] in r.query]
        succeeded(run, proxy, faults=1)
    assert len(puts) == 2  # the cut one, then the whole blob again
    assert f"upload of {image.big} failed (" in run.err
    assert "starting it over in" in run.err
    same_as_source(job, "team/app:reset-put", image, tmp_path)


@pytest.mark.parametrize(
    ("point", "patch", "after", "reached"),
    [
        ("early", 1, 1000, True),
        ("middle", 2, 512 * 1024, True),
        ("last bytes", 3, -100, True),
        ("middle, before the registry", 2, 512 * 1024, False),
    ],
)
def test_reset_mid_patch_resumes_or_starts_the_blob_over(
    job: Job, image: Image, tmp_path: Path, *, point: str, patch: int, after: int, reached: bool
) -> None:
    """PATCH chunks of 1 MiB (copy --chunk-size 1M), one cut mid-body.

    When part of the chunk reached it, docker-registry 2.8 keeps those bytes, finds its upload
    no longer at the offset its signed state says ("upload resumed at wrong offset" in its
    log) and cancels the session: the status GET answers 404 and the blob starts over. (When
    the status GET comes before the registry has noticed, it still says where it was, and the
    resumed PATCH is what gets the 404: the same way out.) When the cut came before the
    registry saw the chunk, the upload resumes at its Range."""
    with FaultProxy(job.registry.url) as proxy:
        cut = proxy.reset_next if reached else proxy.drop_next
        cut(1, after_bytes=after, method="PATCH", predicate=nth(patch))
        host = proxy.url.removeprefix("http://")
        started = time.monotonic()
        result = subprocess.run(
            [CLI, "copy", image.source, f"docker://{host}/team/chunks:{patch}",
             "--dest-creds", creds(job),
             "--chunk-size", "1M"],
            env=plain_env(job), capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        job.outputs += [result.stdout, result.stderr]
        run = Run(result, time.monotonic() - started)
        history = list(proxy.history)
        succeeded(run, proxy, faults=1)
    posts = [r for r in history if r.method == "POST" and UPLOAD.search(r.path)]
    status = [r for r in history if r.method == "GET" and UPLOAD.search(r.path)]
    assert len(status) == 1  # asked the registry where it was, once
    if reached:
        assert "the registry lost the upload session (HTTP 404" in run.err
        assert "starting it over" in run.err
        assert len(posts) == len(image.blobs()) + 1  # a new session for the big blob
    else:
        assert f"resuming at byte {(patch - 1) * MIB}" in run.err, run.err
        assert len(posts) == len(image.blobs())  # the same session, resumed
    same_as_source(job, f"team/chunks:{patch}", image, tmp_path)


# ---- bursts of 429 and 5xx -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "method", "path", "statuses"),
    [
        ("blob HEAD", "HEAD", BLOB, (429, 500, 502, 503)),
        ("upload POST", "POST", UPLOAD, (503, 429)),
        ("blob PUT", "PUT", UPLOAD, (502, 503)),
        ("manifest PUT", "PUT", MANIFEST, (500, 503)),
    ],
)
def test_a_burst_is_waited_out_honouring_retry_after(
    job: Job,
    image: Image,
    tmp_path: Path,
    *,
    where: str,
    method: str,
    path: re.Pattern[str],
    statuses: tuple[int, ...],
) -> None:
    with FaultProxy(job.registry.url) as proxy:
        proxy.fail_sequence(statuses, retry_after=1, method=method, path=path)
        run = push(job, proxy.url, image, "burst")
        succeeded(run, proxy, faults=len(statuses))
    assert f"HTTP {statuses[0]}" in run.err
    assert "(Retry-After: 1)" in run.err
    waits = [
        float(w) for w in re.findall(r"(?:trying again|starting it over) in ([\d.]+) s", run.err)
    ]
    assert len(waits) == len(statuses)
    assert min(waits) >= 1.0  # never sooner than the registry asked
    same_as_source(job, "team/app:burst", image, tmp_path)


def test_a_manifest_put_whose_answer_was_lost_is_looked_up_not_sent_again(
    job: Job, image: Image, tmp_path: Path
) -> None:
    """The registry stored the manifest, then the connection died before its answer."""
    with FaultProxy(job.registry.url) as proxy:
        proxy.lose_answer_next(1, method="PUT", path=MANIFEST)
        run = push(job, proxy.url, image, "landed")
        puts = [r for r in proxy.history if r.method == "PUT" and MANIFEST.search(r.path)]
        heads = [r for r in proxy.history if r.method == "HEAD" and r.path.endswith("/landed")]
        succeeded(run, proxy, faults=1)
    assert len(heads) == 2  # the tag plan's HEAD, then the look-up before a second PUT
    assert len(puts) == 1  # it had landed: not sent again
    assert f"manifest landed landed at {image.info.manifest_digest}" in run.err
    same_as_source(job, "team/app:landed", image, tmp_path)


@pytest.mark.parametrize(
    ("where", "method", "path", "code", "message"),
    [
        ("blob HEAD", "HEAD", BLOB, 5,
         "failed after 3 attempts (last answer: HTTP 503 Service Unavailable (Retry-After: 1)"),
        ("blob PUT", "PUT", UPLOAD, 5,
         "failed after 3 attempts (last: HTTP 503 Service Unavailable (Retry-After: 1)"),
        ("manifest PUT", "PUT", MANIFEST, 5,
         "failed after 3 attempts (last answer: HTTP 503 Service Unavailable (Retry-After: 1)"),
    ],
)  # fmt: skip
def test_past_the_bound_exit_5_names_attempts_and_last_answer(
    job: Job, image: Image, *, where: str, method: str, path: re.Pattern[str], code: int,
    message: str,
) -> None:  # fmt: skip
    with FaultProxy(job.registry.url) as proxy:
        proxy.fail_next(100, status=503, retry_after=1, method=method, path=path,
                        body=json.dumps({"errors": [{"code": "UNAVAILABLE"}]}))  # fmt: skip
        run = push(job, proxy.url, image, "bounded", XACCT_RETRIES="2")
        line = failed(run, proxy, code)
    assert message in line, line
    assert "XACCT_RETRIES" in line
    untagged(job, "team/app:bounded")


def test_a_token_refused_past_the_renewal_is_exit_4_with_the_attempts(
    job: Job, image: Image
) -> None:
    with FaultProxy(job.registry.url) as proxy:
        proxy.fail_next(100, status=401, method="HEAD", path=BLOB, headers=BASIC)
        run = push(job, proxy.url, image, "refused")
        line = failed(run, proxy, 4)
    assert "(HTTP 401, after 2 attempts with renewed credentials)" in line, line
    assert "refused the ECR token; asking ECR for a new one" in run.err
    untagged(job, "team/app:refused")


# ---- ECR token rejected mid-push ---------------------------------------------------------------


def test_a_token_rejected_mid_upload_is_renewed_once_and_the_push_goes_on(
    job: Job, image: Image, tmp_path: Path
) -> None:
    with FaultProxy(job.world.endpoint_url) as aws, FaultProxy(job.registry.url) as proxy:
        # The login worked; then, in the middle of the push, the registry refuses the token.
        proxy.fail_next(1, status=401, method="PUT", path=UPLOAD, headers=BASIC,
                        predicate=put_of(image.big))  # fmt: skip
        run = push(job, proxy.url, image, "relogin", AWS_ENDPOINT_URL=aws.url)
        succeeded(run, proxy, faults=1)
        assert aws.action_count("GetAuthorizationToken") == 2  # the login, and one renewal
    assert "refused the ECR token; asking ECR for a new one" in run.err
    same_as_source(job, "team/app:relogin", image, tmp_path)


# ---- STS and ECR throttling and 5xx (botocore's standard retries) ---------------------------


@pytest.mark.parametrize(
    ("action", "status", "body"),
    [
        ("AssumeRole", 400, aws_query_error("Throttling", "Rate exceeded")),
        ("AssumeRole", 503, aws_query_error("ServiceUnavailable", "Try again",
                                            error_type="Receiver")),
        ("GetAuthorizationToken", 400, aws_json_error("ThrottlingException", "Rate exceeded")),
        ("GetAuthorizationToken", 500, aws_json_error("ServerException", "Internal error")),
        ("DescribeRepositories", 400, aws_json_error("ThrottlingException", "Rate exceeded")),
    ],
)  # fmt: skip
def test_aws_throttling_and_5xx_are_retried_then_succeed(
    job: Job, image: Image, tmp_path: Path, *, action: str, status: int, body: bytes
) -> None:
    with FaultProxy(job.world.endpoint_url) as aws:
        aws.fail_next(2, status=status, body=body, action=action)
        run = push(job, job.registry.url, image, "aws-retried", AWS_ENDPOINT_URL=aws.url)
        succeeded(run, aws, faults=2)
        assert aws.action_count(action) == 3
    same_as_source(job, "team/app:aws-retried", image, tmp_path)


@pytest.mark.parametrize(
    ("action", "status", "body", "code", "message"),
    [
        ("AssumeRole", 400, aws_query_error("Throttling", "Rate exceeded"), 3,
         "failed after 4 attempts: Throttling: Rate exceeded"),
        ("AssumeRole", 503, aws_query_error("ServiceUnavailable", "Try again",
                                            error_type="Receiver"), 3,
         "failed after 4 attempts: ServiceUnavailable: Try again"),
        ("GetAuthorizationToken", 400, aws_json_error("ThrottlingException", "Rate exceeded"), 4,
         "ecr:GetAuthorizationToken failed after 4 attempts in account 222222222222"),
        ("GetAuthorizationToken", 500, aws_json_error("ServerException", "Internal error"), 4,
         "ecr:GetAuthorizationToken failed after 4 attempts in account 222222222222"),
    ],
)  # fmt: skip
def test_aws_past_the_bound_names_attempts_and_last_answer(
    job: Job, image: Image, *, action: str, status: int, body: bytes, code: int, message: str
) -> None:
    with FaultProxy(job.world.endpoint_url) as aws:
        aws.fail_next(100, status=status, body=body, action=action)
        run = push(job, job.registry.url, image, "aws-bounded", AWS_ENDPOINT_URL=aws.url)
        line = failed(run, aws, code)
        assert aws.action_count(action) == 4  # botocore standard mode: 4 attempts in all
    assert message in line, line
    untagged(job, "team/app:aws-bounded")


# ---- slow and stalled peers ----------------------------------------------------------------


def test_a_stalled_registry_ends_the_push_within_the_timeouts(job: Job, image: Image) -> None:
    with FaultProxy(job.registry.url) as proxy:
        proxy.stall_next(100, seconds=120)
        url = proxy.url
        run = push(job, url, image, "stalled", XACCT_READ_TIMEOUT="1", XACCT_RETRIES="1")
        line = failed(run, proxy, 5)
    assert (
        f"could not reach the registry at {url} (no answer within 1 s "
        "(XACCT_READ_TIMEOUT)) after 2 attempts" in line
    ), line
    # 2 read timeouts of 1 s and one backoff (< 0.5 s), after the AWS part (~2 s here).
    assert run.seconds < 15, run.seconds
    untagged(job, "team/app:stalled")


def test_a_registry_that_stalls_once_on_an_upload_is_given_up_on_and_retried(
    job: Job, image: Image, tmp_path: Path
) -> None:
    with FaultProxy(job.registry.url) as proxy:
        proxy.stall_next(1, seconds=120, method="PUT", path=UPLOAD,
                         predicate=put_of(image.big))  # fmt: skip
        run = push(job, proxy.url, image, "stalled-once", XACCT_READ_TIMEOUT="2")
        succeeded(run, proxy, faults=1)
    assert "no answer within 2 s (XACCT_READ_TIMEOUT)" in run.err
    assert run.seconds < 60, run.seconds  # the stall (120 s) was not waited out
    same_as_source(job, "team/app:stalled-once", image, tmp_path)


def test_a_slow_source_registry_that_keeps_sending_is_never_cut_off(
    job: Job, image: Image, tmp_path: Path
) -> None:
    """A docker:// source serving the 3 MiB layer at 1 MiB/s, with a read timeout of 1 s:
    every read gets bytes within a tenth of a second, so slow is not taken for stalled.

    (The other way round, a registry reading an upload slowly, a read timeout also covers
    the bytes still queued in the socket buffers when the last one was handed over: a few MiB
    on loopback. The default of 120 s leaves room for that; a 1 s timeout would not.)"""
    seed(job, image, "team/src-slow")
    with FaultProxy(job.registry.url) as source:
        source.slow_next(1, rate=MIB, method="GET", path=f"/v2/team/src-slow/blobs/{image.big}")
        host = source.url.removeprefix("http://")
        started = time.monotonic()
        result = job.push(env=job.env(
            XACCT_SOURCE=f"docker://{host}/team/src-slow:1", XACCT_SRC_CREDS=creds(job),
            XACCT_TAGS="slow", XACCT_READ_TIMEOUT="1",
        ))  # fmt: skip
        run = Run(result, time.monotonic() - started)
        succeeded(run, source, faults=1)
    assert run.seconds >= 3.0
    for retried in ("trying again", "starting it over", "no answer"):
        assert retried not in run.err
    same_as_source(job, "team/app:slow", image, tmp_path)


def test_a_source_that_breaks_off_a_blob_mid_download_is_read_again(
    job: Job, image: Image, tmp_path: Path
) -> None:
    """A docker:// source resets after 1 MiB of the 3 MiB layer: the upload it was feeding
    starts over with a new GET of the blob."""
    seed(job, image, "team/src-cut")
    blob_path = f"/v2/team/src-cut/blobs/{image.big}"
    with FaultProxy(job.registry.url) as source:
        source.cut_answer_next(1, after_bytes=MIB, method="GET", path=blob_path)
        host = source.url.removeprefix("http://")
        started = time.monotonic()
        result = job.push(env=job.env(
            XACCT_SOURCE=f"docker://{host}/team/src-cut:1", XACCT_SRC_CREDS=creds(job),
            XACCT_TAGS="source-cut",
        ))  # fmt: skip
        run = Run(result, time.monotonic() - started)
        gets = source.route_count("GET", blob_path)
        succeeded(run, source, faults=1)
    assert gets == 2
    assert f"{host} broke off the blob it was sending" in run.err
    assert "starting it over" in run.err
    same_as_source(job, "team/app:source-cut", image, tmp_path)


def test_a_registry_that_never_accepts_the_connection_hits_the_connect_timeout(
    job: Job, image: Image
) -> None:
    with Blackhole() as hole:
        run = push(job, hole.url, image, "blackhole", XACCT_CONNECT_TIMEOUT="1",
                   XACCT_RETRIES="1")  # fmt: skip
        line = failed(run, None, 5)
    count("faults injected")
    assert "(no connection within 1 s (XACCT_CONNECT_TIMEOUT)) after 2 attempts" in line, line
    assert run.seconds < 15, run.seconds


# ---- wrong digests and malformed manifests -------------------------------------------------


def test_a_wrong_digest_for_a_blob_is_exit_5_before_any_manifest(job: Job, image: Image) -> None:
    with FaultProxy(job.registry.url) as proxy:
        proxy.rewrite_next(1, headers={"Docker-Content-Digest": WRONG}, method="PUT",
                           path=UPLOAD, predicate=put_of(image.big))  # fmt: skip
        run = push(job, proxy.url, image, "wrong-blob")
        manifest_puts = [r for r in proxy.history if r.method == "PUT" and MANIFEST.search(r.path)]
        line = failed(run, proxy, 5)
    assert f"stored blob {image.big} under digest {WRONG}" in line, line
    assert manifest_puts == []
    untagged(job, "team/app:wrong-blob")


def test_a_wrong_digest_for_a_child_manifest_is_exit_5_before_any_tag(
    job: Job, tmp_path: Path
) -> None:
    layout = write_oci_index_layout(tmp_path / "multi")
    with FaultProxy(job.registry.url) as proxy:
        proxy.rewrite_next(1, headers={"Docker-Content-Digest": WRONG}, method="PUT",
                           path=re.compile(r"/manifests/sha256:"))  # fmt: skip
        started = time.monotonic()
        result = job.push(XACCT_SOURCE=f"oci:{tmp_path / 'multi'}:latest",
                          XACCT_TAGS="wrong-child", XACCT_REGISTRY_ENDPOINT=proxy.url)  # fmt: skip
        tag_puts = [r for r in proxy.history if r.method == "PUT" and "wrong-child" in r.path]
        line = failed(Run(result, time.monotonic() - started), proxy, 5)
    child = layout.children[0].manifest_digest
    assert f"answered digest {WRONG} for manifest {child}" in line, line
    assert tag_puts == []
    untagged(job, "team/app:wrong-child")


def test_a_wrong_digest_for_the_tagged_manifest_stops_before_the_next_tag(
    job: Job, image: Image
) -> None:
    """A registry that answers 201 with another digest (and stored nothing)."""
    with FaultProxy(job.registry.url) as proxy:
        proxy.fail_next(1, status=201, method="PUT", path=MANIFEST,
                        headers={"Docker-Content-Digest": WRONG})  # fmt: skip
        run = push(job, proxy.url, image, "wrong-tag-1 wrong-tag-2")
        puts = [r for r in proxy.history if r.method == "PUT" and MANIFEST.search(r.path)]
        line = failed(run, proxy, 5)
    assert f"answered digest {WRONG} for manifest wrong-tag-1" in line, line
    assert len(puts) == 1  # the second tag was never PUT
    untagged(job, "team/app:wrong-tag-1")
    untagged(job, "team/app:wrong-tag-2")


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("bad JSON", "and it is not a JSON object: not an image manifest"),
        ("wrong media type", f"as {OCI_INDEX}, but the document says it is {OCI_MANIFEST}"),
        ("digest mismatch", f"as {WRONG}, but its bytes hash to sha256:"),
    ],
)
def test_a_docker_source_serving_a_broken_manifest_is_exit_5_and_nothing_is_tagged(
    job: Job, image: Image, fault: str, message: str
) -> None:
    seed(job, image, "team/src")
    served = {
        "bad JSON": (b'{"schemaVersion": 2, "layers": [', OCI_MANIFEST, {}),
        "wrong media type": (image.info.manifest, OCI_INDEX, {}),
        "digest mismatch": (image.info.manifest, OCI_MANIFEST, {"Docker-Content-Digest": WRONG}),
    }[fault]
    body, content_type, headers = served
    with FaultProxy(job.registry.url) as source:
        source.fail_next(1, status=200, body=body, content_type=content_type, headers=headers,
                         method="GET", path=MANIFEST)  # fmt: skip
        host = source.url.removeprefix("http://")
        started = time.monotonic()
        result = job.push(XACCT_SOURCE=f"docker://{host}/team/src:1",
                          XACCT_SRC_CREDS=creds(job), XACCT_TAGS="broken-source")  # fmt: skip
        line = failed(Run(result, time.monotonic() - started), source, 5)
    assert message in line, line
    untagged(job, "team/app:broken-source")
