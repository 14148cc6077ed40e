"""Checks 7 and 8: the registry answers /v2/ to the ECR login, and takes a blob upload.

The upload probe opens an upload session (POST /v2/REPO/blobs/uploads/), which ECR authorises
as ecr:InitiateLayerUpload on the repository, and cancels it at once (DELETE on the session's
Location), then asks for the session (GET): 404 proves it gone. No byte is sent, so no blob can
exist. A registry that refuses the DELETE expires the empty session on its own. (CNCF
distribution 2.8 keeps a few bytes of hash state in its storage after a cancel, an upstream quirk
its upload purger removes: distribution/distribution#4524.)
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urljoin

from gitlab_xacct.aws.ecr import RegistryLogin
from gitlab_xacct.doctor.config import DoctorSettings
from gitlab_xacct.doctor.report import BUILD, GITLAB, OURTHING, Check, ok
from gitlab_xacct.errors import RegistryAuthError, RegistryUnreachable, XacctError
from gitlab_xacct.registry.auth import push_scope, repository_scope
from gitlab_xacct.registry.client import Credentials, Registry

REACHABLE = "registry reachable"
PUSH = "push permission"


def connect(settings: DoctorSettings, login: RegistryLogin, env: Mapping[str, str]) -> Registry:
    endpoint = settings.registry_endpoint or login.endpoint
    # The proxy and trust-store variables of the settings' mapping, as push's registry reads them.
    return Registry(endpoint, Credentials(login.username, login.password), pool=1, env=env)


def check_reachable(settings: DoctorSettings, registry: Registry) -> Check:
    source = settings.endpoint_origin if settings.registry_endpoint else "ECR's proxyEndpoint"
    try:
        registry.ping()
    except RegistryUnreachable as exc:
        side = f"{GITLAB} or {BUILD}" if settings.registry_endpoint else BUILD
        return Check(
            REACHABLE, "FAIL", str(exc), side=side,
            fix=f"check {source} ({registry.base_url}) and the runner's network path to it "
            "(proxy, VPC endpoint, firewall)", exit_code=exc.exit_code,
        )  # fmt: skip
    except RegistryAuthError as exc:
        return Check(
            REACHABLE, "FAIL", str(exc), side=OURTHING,
            fix="the registry refused the ECR login: check that it is the target account's "
            f"registry ({source}) and the role's ECR permissions", exit_code=exc.exit_code,
        )  # fmt: skip
    except XacctError as exc:
        return Check(REACHABLE, "FAIL", str(exc), fix=f"check {source}",
                     exit_code=exc.exit_code)  # fmt: skip
    return ok(REACHABLE, f"{registry.base_url}/v2/ accepts the ECR login ({source})")


def check_push(settings: DoctorSettings, registry: Registry) -> Check:
    repository = settings.repository
    role = settings.identity.target.role
    scopes = (push_scope(repository),)
    try:
        response = registry.send("POST", f"/v2/{repository}/blobs/uploads/", scopes=scopes)
        location = response.headers.get("Location", "")
        response.close()
        registry.check(response, f"the start of a blob upload into {repository}", (202,))
    except RegistryAuthError as exc:
        return Check(
            PUSH, "FAIL", str(exc), side=OURTHING,
            fix=f"allow role {role.name} the push actions (ecr:InitiateLayerUpload, "
            f"ecr:UploadLayerPart, ecr:CompleteLayerUpload, ecr:PutImage...) on {repository}",
            exit_code=exc.exit_code,
        )  # fmt: skip
    except XacctError as exc:
        return Check(PUSH, "FAIL", str(exc), side=OURTHING,
                     fix="see the registry's answer above", exit_code=exc.exit_code)  # fmt: skip
    return _cancel(registry, repository, location, scopes)


def _cancel(registry: Registry, repository: str, location: str, scopes: tuple[str, ...]) -> Check:
    """Cancel the probe's session, then make sure the registry forgot it."""
    if not location:
        return Check(PUSH, "warn", "the registry opened an upload without naming it (no "
                     "Location header); it expires on its own", side="")  # fmt: skip
    session = urljoin(registry.url("/"), location)
    try:
        # Token-auth registries (distribution) want "delete" for any DELETE; a token service
        # grants what it allows of what is asked, so asking costs nothing.
        cancel = registry.send(
            "DELETE", session, scopes=(*scopes, repository_scope(repository, "delete"))
        )
        cancel.close()
        after = registry.send("GET", session, scopes=scopes)
        after.close()
    except XacctError as exc:
        return Check(PUSH, "warn", f"may start uploads; cancelling the probe failed ({exc}); "
                     "the empty session expires on its own", side="")  # fmt: skip
    if cancel.status_code not in (200, 202, 204):
        return Check(
            PUSH, "warn", f"may start uploads into {repository}; the registry answered HTTP "
            f"{cancel.status_code} to cancelling the probe, so the empty session expires on "
            "its own", side="",
        )  # fmt: skip
    if after.status_code != 404:
        return Check(
            PUSH, "warn", f"may start uploads into {repository}; the registry accepted the "
            f"cancel but still answers HTTP {after.status_code} for the session, which it "
            "expires on its own", side="",
        )  # fmt: skip
    return ok(PUSH, f"may upload into {repository} (probe upload started and cancelled)")
