"""Where else the repository is: ecr:DescribeRepositories in every region of the partition the
role may look in, as a person would look in the console's region menu.

Read-only, in parallel (a bounded pool), one attempt with short timeouts per region, and one
deadline for all of them, so a network that reaches only some regions costs seconds, not
minutes. Regions come from botocore's partition data; the job's hints (AWS_REGION,
AWS_DEFAULT_REGION, the region of an ECR endpoint host) go first and are asked even when
botocore does not know them yet. With an endpoint override (AWS_ENDPOINT_URL, a stand-in)
every region's client goes to it, signed for its own region.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from gitlab_xacct.aws.credentials import AssumedRole, client, probe_config

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

WORKERS = 16
DEADLINE = 8.0  # seconds for the whole look, whatever the number of regions
# The role may not look there, or the region is not enabled for the account (opt-in regions
# refuse the credentials as unknown).
REFUSED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "UnauthorizedOperation",
        "OptInRequired",
    }
)


@dataclass(frozen=True, slots=True)
class Search:
    holding: tuple[str, ...]  # regions where the repository exists
    missing: tuple[str, ...]  # regions that answered: not there
    refused: tuple[str, ...]  # AccessDenied, unrecognised credentials, not enabled
    unanswered: tuple[str, ...]  # no answer in time, or an unexpected one

    @property
    def looked(self) -> int:
        return len(self.holding) + len(self.missing)

    def blind_note(self) -> str:
        """Why the look elsewhere told nothing, for a message; '' when it told something."""
        parts = []
        if self.refused:
            parts.append(f"refused or not enabled in {len(self.refused)}")
        if self.unanswered:
            parts.append(f"no answer from {len(self.unanswered)}")
        return "; ".join(parts)


def candidates(role: AssumedRole, partition: str, own: str, hints: Sequence[str]) -> list[str]:
    known = role.session.get_available_regions("ecr", partition_name=partition)
    return [r for r in dict.fromkeys([*hints, *known]) if r and r != own]


def search(
    role: AssumedRole, repository: str, regions: Sequence[str], *, deadline: float = DEADLINE
) -> Search:
    # Clients are made here, in one thread: a boto3 session is not safe to share for that;
    # the clients themselves are.
    clients = {region: client(role.session, "ecr", region, config=probe_config())
               for region in regions}  # fmt: skip
    work: queue.SimpleQueue[tuple[str, ECRClient]] = queue.SimpleQueue()
    for item in clients.items():
        work.put(item)
    answers: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()

    def worker() -> None:
        while True:
            try:
                region, ecr = work.get_nowait()
            except queue.Empty:
                return
            answers.put((region, _ask(ecr, role.account, repository)))

    # Daemon threads, not a ThreadPoolExecutor: the interpreter joins an executor's threads at
    # exit, so a region still in flight at the deadline would hold the doctor's exit for as
    # long as its timeouts run. A daemon thread left behind ends with the process.
    for number in range(min(WORKERS, len(clients))):
        threading.Thread(target=worker, name=f"doctor-region-{number}", daemon=True).start()
    outcome: dict[str, str] = {}
    end = time.monotonic() + deadline
    while len(outcome) < len(clients) and (left := end - time.monotonic()) > 0:
        try:
            region, answer = answers.get(timeout=left)
        except queue.Empty:
            break
        outcome[region] = answer

    def where(kind: str) -> tuple[str, ...]:
        return tuple(r for r in regions if outcome.get(r, "unanswered") == kind)

    return Search(where("holding"), where("missing"), where("refused"), where("unanswered"))


def _ask(ecr: ECRClient, account: str, repository: str) -> str:
    try:
        ecr.describe_repositories(registryId=account, repositoryNames=[repository])
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "RepositoryNotFoundException":
            return "missing"
        return "refused" if code in REFUSED else "unanswered"
    except BotoCoreError:
        return "unanswered"
    return "holding"
