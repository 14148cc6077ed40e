"""Checks 5 and 6: an ECR token with the assumed role, and the repository (or the right to
create it), with a look at the other likely regions when it is not where the settings say."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from gitlab_xacct.aws import ecr, iam
from gitlab_xacct.aws.credentials import AssumedRole
from gitlab_xacct.aws.ecr import RegistryLogin
from gitlab_xacct.config.validate import parse_ecr_host
from gitlab_xacct.docker_config import registry_host
from gitlab_xacct.doctor import reasons, regions
from gitlab_xacct.doctor.config import DoctorSettings
from gitlab_xacct.doctor.report import GITLAB, OURTHING, Cause, Check, ok
from gitlab_xacct.errors import RegistryAuthError
from gitlab_xacct.secrets import mask

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

TOKEN = "ecr token"  # noqa: S105 - a check name
REPOSITORY = "repository"
_DENIED = ("AccessDeniedException", "AccessDenied")


@dataclass(frozen=True, slots=True)
class Ecr:
    client: ECRClient
    login: RegistryLogin


def _push_policy(settings: DoctorSettings, *, allow_create: bool) -> tuple[str, dict[str, object]]:
    role = settings.identity.target.role
    arn = iam.repository_arn(role.partition, settings.identity.region, role.account,
                             settings.repository)  # fmt: skip
    return (
        f"permission policy role {role.name} needs ({OURTHING}, account {role.account})",
        iam.push_policy(repository_arns=[arn], allow_create=allow_create),
    )


def check_token(settings: DoctorSettings, role: AssumedRole) -> tuple[Check, Ecr | None]:
    region = settings.identity.region
    client = ecr.ecr_client(role, region)
    try:
        auth = ecr.authorize(client, account=role.account, region=region, role=role.arn)
    except RegistryAuthError as exc:
        named = reasons.found(str(exc))
        if named is not None and named.kind != "identity-based policy":
            return _token_refused_by(settings, named, exc), None
        return Check(
            TOKEN, "FAIL", str(exc), side=OURTHING,
            fix=f"give role {settings.identity.target.role.name} the permission policy below "
            "(ecr:GetAuthorizationToken on *, the push actions on the repository)",
            exit_code=RegistryAuthError.exit_code,
            policies=(_push_policy(settings, allow_create=settings.create_repository),),
        ), None  # fmt: skip
    host = registry_host(auth.login.endpoint)
    return ok(TOKEN, f"token for {host} (user {auth.login.username})"), Ecr(client, auth.login)


def _token_refused_by(
    settings: DoctorSettings, named: reasons.Reason, exc: RegistryAuthError
) -> Check:
    """AWS named a policy other than the role's permission policy (an SCP, a boundary...)."""
    cause, fix = _refused_by(settings, named, "ecr:GetAuthorizationToken", "*",
                             "the repository policy")  # fmt: skip
    return Check(
        TOKEN, "FAIL", str(exc), side=cause.side, fix=fix,
        exit_code=RegistryAuthError.exit_code, causes=(cause,),
    )  # fmt: skip


def check_repository(
    settings: DoctorSettings, role: AssumedRole, client: ECRClient, env: Mapping[str, str]
) -> Check:
    region = settings.identity.region
    name, account = settings.repository, role.account
    try:
        found = client.describe_repositories(registryId=account, repositoryNames=[name])
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code not in (*_DENIED, "RepositoryNotFoundException"):
            return _failed(f"ecr:DescribeRepositories failed: {code}: {_message(exc)}", "")
        search = _look_elsewhere(settings, role, env)
        elsewhere = search.holding
        if elsewhere:
            fix = (
                f"set {settings.entry.named('region')} to {elsewhere[0]}"
                if settings.entry
                else f"set XACCT_REGION={elsewhere[0]}"
            )
            refused = " (its ecr:DescribeRepositories is refused there)" if code in _DENIED else ""
            return Check(
                REPOSITORY, "FAIL", f"{name} is not in {region} (account {account}){refused} but "
                f"exists in {', '.join(elsewhere)}: the settings name the wrong region",
                side=GITLAB, fix=fix, exit_code=RegistryAuthError.exit_code,
            )  # fmt: skip
        if code in _DENIED:
            return _describe_denied(settings, exc)
        return _missing(settings, client, account, search)
    except BotoCoreError as exc:
        return _failed(f"could not reach ECR in {region}: {mask(str(exc))}", "")
    mutability = found["repositories"][0].get("imageTagMutability", "MUTABLE")
    return ok(REPOSITORY, f"{name} exists in account {account} ({region}), tags {mutability}")


def _message(exc: ClientError) -> str:
    return mask(str(exc.response.get("Error", {}).get("Message", "")))


def _failed(detail: str, side: str, fix: str = "see the message") -> Check:
    return Check(REPOSITORY, "FAIL", detail, side=side, fix=fix,
                 exit_code=RegistryAuthError.exit_code)  # fmt: skip


def _describe_denied(settings: DoctorSettings, exc: ClientError) -> Check:
    role = settings.identity.target.role
    detail = (
        f"role {role.name} may not call ecr:DescribeRepositories on {settings.repository} "
        f"({_message(exc)})"
    )
    named = reasons.found(_message(exc))
    if named is not None and named.kind != "identity-based policy":
        return _describe_refused_by(settings, named, detail)
    if settings.create_repository:  # push needs the answer before it may create
        return Check(
            REPOSITORY, "FAIL", detail + "; with XACCT_CREATE_REPOSITORY=true push needs it",
            side=OURTHING, fix=f"allow ecr:DescribeRepositories to role {role.name}",
            exit_code=RegistryAuthError.exit_code,
            policies=(_push_policy(settings, allow_create=True),),
        )  # fmt: skip
    return Check(
        REPOSITORY, "warn", detail + "; push will try anyway, and fail later if it is missing",
        side=OURTHING, fix=f"allow ecr:DescribeRepositories to role {role.name}",
    )  # fmt: skip


def _describe_refused_by(settings: DoctorSettings, named: reasons.Reason, detail: str) -> Check:
    """AWS named a policy other than the role's permission policy (an SCP, a boundary...)."""
    role = settings.identity.target.role
    arn = iam.repository_arn(role.partition, settings.identity.region, role.account,
                             settings.repository)  # fmt: skip
    cause, fix = _refused_by(settings, named, "ecr:DescribeRepositories", arn,
                             f"the repository policy of {settings.repository}")  # fmt: skip
    if settings.create_repository:  # push needs the answer before it may create
        return Check(
            REPOSITORY, "FAIL", detail + "; with XACCT_CREATE_REPOSITORY=true push needs it",
            side=cause.side, fix=fix, exit_code=RegistryAuthError.exit_code, causes=(cause,),
        )  # fmt: skip
    return Check(
        REPOSITORY, "warn", detail + "; push will try anyway, and fail later if it is missing",
        side=cause.side, fix=fix, causes=(cause,),
    )  # fmt: skip


def _refused_by(
    settings: DoctorSettings, named: reasons.Reason, action: str, resource: str, policy: str
) -> tuple[Cause, str]:
    """The cause and fix AWS's reason names for `action` by the OURTHING role, in its account."""
    role = settings.identity.target.role
    denial = reasons.Denial(
        principal=str(role), principal_account=role.account, principal_side=OURTHING,
        action=action, resource=resource, resource_account=role.account, resource_policy=policy,
    )  # fmt: skip
    return reasons.cause(named, denial)


def _missing(
    settings: DoctorSettings, client: ECRClient, account: str, search: regions.Search
) -> Check:
    region, name = settings.identity.region, settings.repository
    role = settings.identity.target.role
    may_create = _may_create(client, name, account)
    where = f"{name} does not exist in account {account} ({region})"
    create_cmd = f"aws ecr create-repository --repository-name {name} --region {region}"
    variable = settings.entry.named("region") if settings.entry else "XACCT_REGION"
    first = ""  # what to do before any create, when the other regions could not be seen
    if search.looked:
        where += f", nor in the {search.looked} other region(s) role {role.name} may look in"
        if search.blind_note():
            where += f" ({search.blind_note()})"
    elif search.blind_note():
        where += (
            f"; the doctor could not look for it in the other regions (role {role.name} may "
            f"not call ecr:DescribeRepositories there: {search.blind_note()}), so it may exist "
            "in another one"
        )
        first = (
            f"find the region that holds {name} in account {account} (the ECR console, region "
            f"by region) and set {variable} to it; only if none does: "
        )
    if settings.create_repository:
        if may_create is True:
            return ok(
                REPOSITORY,
                f"{where}; XACCT_CREATE_REPOSITORY=true and role {role.name} may create it "
                "(probed with an invalid CreateRepository that was refused as invalid, not as "
                "denied: a heuristic, see docs/doctor.md)",
            )
        if may_create is None:
            return Check(
                REPOSITORY, "warn", f"{where}; XACCT_CREATE_REPOSITORY=true, but whether role "
                f"{role.name} may create it could not be told", side=OURTHING,
                fix=f"{first}make sure role {role.name} may call ecr:CreateRepository, or run "
                f"{create_cmd}",
            )  # fmt: skip
        return Check(
            REPOSITORY, "FAIL", f"{where}, and role {role.name} may not call "
            "ecr:CreateRepository on it (XACCT_CREATE_REPOSITORY=true)", side=OURTHING,
            fix=f"{first}allow ecr:CreateRepository to role {role.name} (policy below), or create "
            f"it: {create_cmd}", exit_code=RegistryAuthError.exit_code,
            policies=(_push_policy(settings, allow_create=True),),
        )  # fmt: skip
    if may_create is True:
        return Check(
            REPOSITORY, "FAIL", f"{where}; XACCT_CREATE_REPOSITORY is not true (role {role.name} "
            "would be allowed to create it)", side=GITLAB,
            fix=f"{first}set XACCT_CREATE_REPOSITORY=true, or create it: {create_cmd}",
            exit_code=RegistryAuthError.exit_code,
        )  # fmt: skip
    return Check(
        REPOSITORY, "FAIL", f"{where}; XACCT_CREATE_REPOSITORY is not true, and role {role.name} "
        "may not create it either", side=OURTHING,
        fix=f"{first}in account {account}: {create_cmd}; or allow ecr:CreateRepository to "
        f"role {role.name} and set XACCT_CREATE_REPOSITORY=true",
        exit_code=RegistryAuthError.exit_code,
    )  # fmt: skip


def _may_create(client: ECRClient, name: str, account: str) -> bool | None:
    """Whether CreateRepository on `name` is authorised, without creating anything.

    ECR has no dry run. The probe asks for a repository that can never be created: tag
    mutability MUTABLE_WITH_EXCLUSION without the exclusion filters it requires, which ECR
    refuses as InvalidParameterException. A denial is proof the role may not create it; a
    validation error is taken to mean the call was authorised first. AWS does not document
    that order, so the second answer is a heuristic (moto authorises first, as AWS appears to).
    None: neither answer (throttled, unreachable, an unexpected code).
    """
    try:
        client.create_repository(
            repositoryName=name, registryId=account, imageTagMutability="MUTABLE_WITH_EXCLUSION"
        )
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _DENIED:
            return False
        if code in ("InvalidParameterException", "ValidationException",
                    "RepositoryAlreadyExistsException"):  # fmt: skip
            return True
        return None
    except BotoCoreError:
        return None
    return True  # accepted after all: then it was created, and the push will find it


def _look_elsewhere(
    settings: DoctorSettings, role: AssumedRole, env: Mapping[str, str]
) -> regions.Search:
    """Every other region of the partition, the job's hints first (see regions.py)."""
    hints = [env.get("AWS_REGION", "").strip(), env.get("AWS_DEFAULT_REGION", "").strip()]
    if settings.registry_endpoint:
        parsed = parse_ecr_host(registry_host(settings.registry_endpoint))
        hints.append(parsed[1] if parsed else "")
    region = settings.identity.region
    partition = settings.identity.target.role.partition
    return regions.search(
        role, settings.repository, regions.candidates(role, partition, region, hints)
    )
