"""The benchmark's scenarios (the issue's six, and 4 again over network links): what runs,
against what, and the target each must meet.

Every scenario alternates its commands run by run (ours, theirs, ours, theirs, ...) so that drift
on the machine (page cache, other load) hits both alike. Each run that pushes for the first time
gets a new docker-registry with empty storage; the registry's start is not timed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.images import MIB, TAG, Image, build_big_layer_image
from bench.links import Link
from bench.measure import BenchError, Sample, Series, run_process
from bench.peers import (
    ACCOUNTS,
    BIN,
    EXTERNAL_ID,
    REGION,
    REPOSITORY,
    Registries,
    RunnerKeys,
    base_env,
    creds,
    job_env,
    role_arn,
)
from tests.standins.servers import Registry, loopback_http

GITLAB_XACCT = str(BIN / "gitlab-xacct")
RECIPE = Path(__file__).with_name("recipe.sh")
# Scenario 7: each destination's link, far below what three local registries can take on two
# cores (about 250 MB/s in all), so the links set the pace, as they do between a runner and ECR.
LINK_MBIT = 200
_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)

Runner = Callable[[Path], Sample]


@dataclass(frozen=True)
class Target:
    """`value` (a ratio, seconds or MiB) against the limit the issue set; lower is better."""

    measure: str
    value: float
    limit: float
    unit: str
    field: str = ""  # the series' field the report shows beside it, when not the wall clock

    @property
    def met(self) -> bool:
        return self.value <= self.limit

    def as_dict(self) -> dict[str, object]:
        return {
            "measure": self.measure,
            "value": round(self.value, 4),
            "limit": self.limit,
            "unit": self.unit,
            "met": self.met,
            **({"field": self.field} if self.field else {}),
        }


@dataclass
class Outcome:
    number: int
    title: str
    series: list[Series]
    target: Target
    notes: list[str] = field(default_factory=list)
    also: list[Target] = field(default_factory=list)  # more targets read from the same runs
    measured_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )

    def as_dict(self) -> dict[str, object]:
        return {
            "number": self.number,
            "title": self.title,
            "measured_at": self.measured_at,
            "target": self.target.as_dict(),
            "also": [t.as_dict() for t in self.also],
            "notes": self.notes,
            "series": [s.as_dict() for s in self.series],
        }


@dataclass
class Context:
    work: Path
    home: Path
    runs: int
    warmup: int
    big_runs: int
    big_mib: int
    registries: Registries
    keys: RunnerKeys
    moto_pid: int
    image: Image
    say: Callable[[str], None]

    def log(self, number: int, name: str, run: int) -> Path:
        return self.work / "logs" / f"s{number}-{name}-{run}.log"


def alternate(
    ctx: Context,
    number: int,
    commands: Sequence[tuple[str, str, Runner]],
    *,
    runs: int | None = None,
) -> list[Series]:
    """Run each command once per round, in order, for warm-up rounds plus `runs` kept rounds."""
    kept = ctx.runs if runs is None else runs
    series = [Series(name, command, []) for name, command, _ in commands]
    for round_number in range(ctx.warmup + kept):
        warm = round_number < ctx.warmup
        for entry, (name, _, runner) in zip(series, commands, strict=True):
            sample = runner(ctx.log(number, name, round_number))
            label = "warm-up" if warm else f"run {round_number - ctx.warmup + 1}/{kept}"
            ctx.say(
                f"  [{number}] {name:<10} {label:<8} {sample.wall_s:7.3f} s  "
                f"{sample.max_rss_mib:6.1f} MiB  cpu {sample.cpu_s:5.2f} s  stand-ins "
                f"{sample.peer_cpu_s:5.2f} s  elsewhere {sample.other_cpu_s:5.2f} s"
            )
            if not warm:
                entry.samples.append(sample)
    return series


def check_pushed(registry: Registry, repository: str, tag: str, digest: str) -> None:
    """The tag must name exactly the manifest the source holds (no tool may re-serialise)."""
    http = loopback_http()
    response = http.head(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        headers={"Accept": _ACCEPT},
        auth=(registry.username, registry.password),
        timeout=30,
    )
    found = response.headers.get("Docker-Content-Digest")
    if response.status_code != 200 or found != digest:
        raise BenchError(
            f"{registry.host}/{repository}:{tag} is {found} ({response.status_code}), "
            f"expected {digest}"
        )


def docker_ref(registry: Registry) -> str:
    return f"docker://{registry.host}/{REPOSITORY}:{TAG}"


def ours_copy(src: str, registry: Registry, *extra: str) -> list[str]:
    return [
        GITLAB_XACCT,
        "copy",
        src,
        docker_ref(registry),
        "--dest-creds",
        creds(registry),
        *extra,
    ]


# skopeo gzips uncompressed layers on their way to a registry (containers/image always asks for
# compressed layers there), which changes every digest: --preserve-digests keeps the bytes, so
# both tools push the same blobs and manifest. A source built by buildah or kaniko has gzip
# layers already, and skopeo then copies them as they are, as with this flag.
SKOPEO_FLAGS = ("--preserve-digests", "--dest-tls-verify=false")


def skopeo_copy(src: str, registry: Registry, *extra: str) -> list[str]:
    return [
        "skopeo", "copy", *SKOPEO_FLAGS, "--dest-creds", creds(registry),
        *extra, src, docker_ref(registry),
    ]  # fmt: skip


def _fresh_copy(
    ctx: Context,
    image: Image,
    build: Callable[[Registry], list[str]],
    source: Registry | None = None,
) -> Runner:
    def run(log: Path) -> Sample:
        with ctx.registries.fresh() as registry:
            peers = [registry.pid] + ([source.pid] if source else [])
            sample = run_process(build(registry), env=base_env(ctx.home), log=log, peers=peers)
            check_pushed(registry, REPOSITORY, TAG, image.manifest_digest)
        return sample

    return run


def _populate(ctx: Context, registry: Registry, image: Image, name: str) -> None:
    run_process(skopeo_copy(image.oci, registry), env=base_env(ctx.home), log=ctx.work / name)
    check_pushed(registry, REPOSITORY, TAG, image.manifest_digest)


def _skopeo_oci_cmd() -> str:
    return f"skopeo copy {' '.join(SKOPEO_FLAGS)} --dest-creds U:P oci:LAYOUT:TAG docker://HOST/R:T"


def first_push(ctx: Context) -> Outcome:
    image = ctx.image
    series = alternate(
        ctx,
        1,
        [
            ("ours", "gitlab-xacct copy oci:LAYOUT:TAG docker://HOST/R:T --dest-creds U:P",
             _fresh_copy(ctx, image, lambda r: ours_copy(image.oci, r))),
            ("skopeo", _skopeo_oci_cmd(),
             _fresh_copy(ctx, image, lambda r: skopeo_copy(image.oci, r))),
        ],
    )  # fmt: skip
    ours, skopeo = (s.summary("wall_s").median for s in series)
    ours_cpu, skopeo_cpu = (s.summary("cpu_s").median for s in series)
    return Outcome(
        1,
        f"first push of a {image.size // MIB} MiB image (4 x 50 MiB) from an OCI layout",
        series,
        Target("ours / skopeo, median wall clock", ours / skopeo, 0.85, "x"),
        also=[
            Target("ours / skopeo, median CPU (user+system)", ours_cpu / skopeo_cpu, 0.6, "x",
                   field="cpu_s"),
        ],
    )  # fmt: skip


def all_present(ctx: Context) -> Outcome:
    image = ctx.image
    with ctx.registries.fresh() as registry:
        _populate(ctx, registry, image, "s2-populate.log")
        env = base_env(ctx.home)

        def ours(log: Path) -> Sample:
            return run_process(
                ours_copy(image.oci, registry), env=env, log=log, peers=[registry.pid]
            )

        def skopeo(log: Path) -> Sample:
            return run_process(
                skopeo_copy(image.oci, registry), env=env, log=log, peers=[registry.pid]
            )

        series = alternate(
            ctx,
            2,
            [
                ("ours", "gitlab-xacct copy (every blob present)", ours),
                ("skopeo", "skopeo copy (every blob present)", skopeo),
            ],
        )
    median = series[0].summary("wall_s").median
    return Outcome(
        2,
        "the same copy when every blob is already present",
        series,
        Target("ours, median wall clock of the whole process", median, 0.5, "s"),
        ["one registry, filled once by skopeo before the first run"],
    )


def registry_to_registry(ctx: Context) -> Outcome:
    image = ctx.image
    with ctx.registries.fresh(ACCOUNTS[1]) as source:
        _populate(ctx, source, image, "s3-populate.log")
        src = docker_ref(source)

        def ours(registry: Registry) -> list[str]:
            return ours_copy(src, registry, "--src-creds", creds(source))

        def skopeo(registry: Registry) -> list[str]:
            return skopeo_copy(
                src, registry, "--src-tls-verify=false", "--src-creds", creds(source)
            )

        series = alternate(
            ctx,
            3,
            [
                ("ours", "gitlab-xacct copy docker://SRC/R:T docker://DST/R:T --src-creds "
                 "--dest-creds", _fresh_copy(ctx, image, ours, source)),
                ("skopeo", f"skopeo copy {' '.join(SKOPEO_FLAGS)} --src-tls-verify=false "
                 "--src-creds --dest-creds docker://SRC/R:T docker://DST/R:T",
                 _fresh_copy(ctx, image, skopeo, source)),
            ],
        )  # fmt: skip
    ours_median, skopeo_median = (s.summary("wall_s").median for s in series)
    return Outcome(
        3,
        "registry-to-registry copy of that image (source: a second docker-registry)",
        series,
        Target("ours / skopeo, median wall clock", ours_median / skopeo_median, 0.9, "x"),
        ["source registry filled once by skopeo; a fresh destination per run"],
    )


def _push_env(ctx: Context, **xacct: str) -> dict[str, str]:
    return job_env(
        ctx.keys,
        ctx.home,
        XACCT_EXTERNAL_ID=EXTERNAL_ID,
        XACCT_SOURCE=ctx.image.oci,
        XACCT_TAGS=TAG,
        **xacct,
    )


def _push_to(ctx: Context, accounts: Sequence[str], rate: float | None = None) -> Runner:
    """`push` to one registry per account; with `rate`, each behind a link of its own."""

    def run(log: Path) -> Sample:
        with ExitStack() as stack:
            registries = [stack.enter_context(ctx.registries.fresh(a)) for a in accounts]
            endpoints = [
                r.url if rate is None else stack.enter_context(Link(_port(r), rate)).url
                for r in registries
            ]
            destinations = "\n".join(
                f"{role_arn(a)}|{REGION}|{REPOSITORY}||{url}"
                for a, url in zip(accounts, endpoints, strict=True)
            )
            env = _push_env(ctx, XACCT_DESTINATIONS=destinations)
            peers = [ctx.moto_pid, *(r.pid for r in registries)]
            sample = run_process([GITLAB_XACCT, "push"], env=env, log=log, peers=peers)
            for registry in registries:
                check_pushed(registry, REPOSITORY, TAG, ctx.image.manifest_digest)
        return sample

    return run


def _port(registry: Registry) -> int:
    return int(registry.host.rsplit(":", 1)[1])


def fan_out(ctx: Context) -> Outcome:
    return _fan_out(
        ctx, 4, "one source to three destinations (3 accounts, each its own registry) vs one",
        None, ["each destination is a different account and registry: no cross-repository mounts"],
    )  # fmt: skip


def fan_out_over_links(ctx: Context) -> Outcome:
    """Scenario 4 with each registry behind a link of its own, as registries in other accounts
    and regions are: the links, not the registries' CPU on these two cores, set the pace."""
    return _fan_out(
        ctx, 7, f"scenario 4 over links: each registry behind its own {LINK_MBIT} Mbit/s link",
        f", each registry behind its own {LINK_MBIT} Mbit/s link",
        [
            f"bench/links.py relays each registry's connections at {LINK_MBIT} Mbit/s in each "
            "direction (shared by the push's parallel uploads), in the benchmark's own process",
            "uploads to one destination after another would take about 3x here",
        ],
    )  # fmt: skip


def _fan_out(ctx: Context, number: int, title: str, links: str | None, notes: list[str]) -> Outcome:
    """Three destinations against one; `links` (what the series' names add) puts each
    registry behind a link of LINK_MBIT."""
    rate = None if links is None else LINK_MBIT * 1_000_000 / 8
    push = "gitlab-xacct push, XACCT_DESTINATIONS:"
    series = alternate(
        ctx,
        number,
        [
            ("ours-3", f"{push} 3 accounts, 3 registries{links or ''}",
             _push_to(ctx, ACCOUNTS, rate)),
            ("ours-1", f"{push} 1 account, 1 registry{links or ''}",
             _push_to(ctx, ACCOUNTS[:1], rate)),
        ],
    )  # fmt: skip
    three, one = (s.summary("wall_s").median for s in series)
    return Outcome(
        number,
        title,
        series,
        Target("3 destinations / 1 destination, median wall clock", three / one, 1.5, "x"),
        notes,
    )


def whole_job(ctx: Context) -> Outcome:
    image = ctx.image

    def ours(log: Path) -> Sample:
        with ctx.registries.fresh() as registry:
            env = _push_env(
                ctx,
                XACCT_ROLE_ARN=role_arn(ACCOUNTS[0]),
                XACCT_REGION=REGION,
                XACCT_REPOSITORY=REPOSITORY,
                XACCT_REGISTRY_ENDPOINT=registry.url,
            )
            peers = [ctx.moto_pid, registry.pid]
            sample = run_process([GITLAB_XACCT, "push"], env=env, log=log, peers=peers)
            check_pushed(registry, REPOSITORY, TAG, image.manifest_digest)
        return sample

    def recipe(log: Path) -> Sample:
        with ctx.registries.fresh() as registry:
            env = job_env(
                ctx.keys,
                ctx.home,
                ROLE_ARN=role_arn(ACCOUNTS[0]),
                EXTERNAL_ID=EXTERNAL_ID,
                AWS_REGION=REGION,
                REGISTRY=registry.host,
                REPOSITORY=REPOSITORY,
                TAG=TAG,
                SOURCE=image.oci,
                SKOPEO_FLAGS=" ".join(SKOPEO_FLAGS),
            )
            peers = [ctx.moto_pid, registry.pid]
            sample = run_process(["bash", str(RECIPE)], env=env, log=log, peers=peers)
            check_pushed(registry, REPOSITORY, TAG, image.manifest_digest)
        return sample

    series = alternate(
        ctx,
        5,
        [
            ("ours", "gitlab-xacct push (assume role + External ID, ECR token, push)", ours),
            ("recipe", "bash bench/recipe.sh (aws sts assume-role, aws ecr "
             "get-login-password, skopeo copy)", recipe),
        ],
    )  # fmt: skip
    ours_median, recipe_median = (s.summary("wall_s").median for s in series)
    return Outcome(
        5,
        f"the whole job ({image.size // MIB} MiB image) against moto and docker-registry",
        series,
        Target("ours / shell recipe, median wall clock", ours_median / recipe_median, 0.6, "x"),
    )


def big_layer(ctx: Context) -> Outcome:
    image = build_big_layer_image(ctx.work / "big", size=ctx.big_mib * MIB)
    ctx.say(f"  [6] built oci:{image.layout}:{TAG} ({image.size / MIB:.0f} MiB), streaming")
    series = alternate(
        ctx,
        6,
        [
            ("ours", "gitlab-xacct copy oci:LAYOUT:TAG docker://HOST/R:T --dest-creds U:P",
             _fresh_copy(ctx, image, lambda r: ours_copy(image.oci, r))),
            ("skopeo", _skopeo_oci_cmd(),
             _fresh_copy(ctx, image, lambda r: skopeo_copy(image.oci, r))),
        ],
        runs=ctx.big_runs,
    )  # fmt: skip
    peak = series[0].summary("max_rss_mib").maximum
    return Outcome(
        6,
        f"peak RSS pushing a single {ctx.big_mib} MiB layer (first push, OCI layout)",
        series,
        Target("ours, highest peak RSS over the runs", peak, 64.0, "MiB"),
    )


SCENARIOS: dict[int, Callable[[Context], Outcome]] = {
    1: first_push,
    2: all_present,
    3: registry_to_registry,
    4: fan_out,
    5: whole_job,
    6: big_layer,
    7: fan_out_over_links,
}


def run_all(ctx: Context, numbers: Sequence[int]) -> Iterator[Outcome]:
    for number in numbers:
        ctx.say(f"scenario {number}: {SCENARIOS[number].__name__.replace('_', ' ')}")
        yield SCENARIOS[number](ctx)
