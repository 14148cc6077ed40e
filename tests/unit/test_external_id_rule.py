"""One rule for the External ID: push, doctor, bootstrap and gitlab configure refuse the same
values with the same words, and none of them echoes the value."""

from __future__ import annotations

import pytest

from gitlab_xacct import cli

ROLE = "arn:aws:iam::222222222222:role/OurThingBuildRole"
JOB = {"XACCT_ROLE_ARN": ROLE, "XACCT_REGION": "eu-west-1", "CI_PROJECT_PATH": "team/app"}
GITLAB = {
    "CI_SERVER_URL": "https://gitlab.example.com",
    "CI_PROJECT_ID": "42",
    "GITLAB_TOKEN": "glpat-unit-sentinel-42",
    "XACCT_ROLE_ARN": ROLE,
}
COMMANDS = {
    "push": (["push", "--source", "oci:/nonexistent:latest"], JOB),
    "doctor": (["doctor"], JOB),
    "login": (["login"], JOB),
    "bootstrap role": (
        ["bootstrap", "role", "--build-account", "111111111111", "--managed-policy", "P"],
        {},
    ),
    "gitlab configure": (["gitlab", "configure"], GITLAB),
}


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("sentinel-Ext-Id-0001\n", "the External ID has a trailing newline; AWS accepts 2 to 1224"),
        (" sentinelExtId0002", "the External ID has a leading space; AWS accepts 2 to 1224"),
        ("s", "the External ID is 1 character long; AWS accepts 2 to 1224"),
        (
            "sentinel#ExtId0003",
            "the External ID has a character AWS does not accept at position 9; AWS accepts",
        ),
    ],
)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_says_the_same_facts(
    command: str, value: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, env = COMMANDS[command]
    code = cli.main(argv, env={**env, "XACCT_EXTERNAL_ID": value})
    out, err = capsys.readouterr()
    assert code == 2, err
    assert f"XACCT_EXTERNAL_ID: {words}" in out + err
    assert "(allowed: letters, digits and _+=,.@:/-)" in out + err
    assert "Traceback" not in err
    if len(value.strip()) > 1:
        assert value.strip() not in out + err
