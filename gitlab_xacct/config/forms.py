"""The forms a value may take, said once: --help, the errors and the README name the same ones
(tests/unit/test_help_tells_the_truth.py holds them together)."""

from __future__ import annotations

SOURCE_FORMS = (
    "oci:PATH[:REF]",
    "oci-archive:FILE[:REF]",
    "docker-archive:FILE[:NAME:TAG|:@N]",
    "docker://HOST/REPO[:TAG|@DIGEST]",
)
DESTINATION_FORM = "ROLE_ARN|REGION|REPOSITORY[|EXTERNAL_ID[|ENDPOINT]]"
CREDENTIAL_FORMATS = ("env", "dotenv", "json", "credential-process", "aws-profile")
# The dotenv report's variables (report.dotenv_lines writes exactly these).
REPORT_VARIABLES = ("XACCT_IMAGE_URI", "XACCT_IMAGE_DIGEST", "XACCT_IMAGE_TAGS", "XACCT_IMAGE_URIS")


def one_of(forms: tuple[str, ...]) -> str:
    """'a, b, c or d'."""
    return ", ".join(forms[:-1]) + f" or {forms[-1]}" if len(forms) > 1 else forms[0]
