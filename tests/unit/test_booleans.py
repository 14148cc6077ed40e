"""One boolean parser: a switch means the same at the CLI's start, in the settings, in the
doctor and in the credential helper, and a bad value is the same one line everywhere."""

from __future__ import annotations

import io
import json
import logging

import pytest

from gitlab_xacct.cli import main
from gitlab_xacct.commands import credential_helper as helper
from gitlab_xacct.commands.doctor import OPTIONS as DOCTOR_OPTIONS
from gitlab_xacct.config.push import PushSettings
from gitlab_xacct.config.resolver import Resolver
from gitlab_xacct.doctor.config import check_settings
from tests.unit.test_settings import job_env

MEANINGS = [
    *((value, True) for value in ("on", "yes", "1", "true", "ON", " True ")),
    *((value, False) for value in ("off", "no", "0", "false", "OFF", " No ")),
]
BAD = "gitlab-xacct: error: XACCT_DEBUG: 'verbose' is not a boolean; use true or false\n"


@pytest.mark.parametrize(("value", "meaning"), MEANINGS)
def test_a_switch_means_the_same_everywhere(
    value: str, meaning: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    # The settings of push (and of login, credentials, copy: the same Resolver.boolean).
    assert PushSettings.from_env(job_env(XACCT_DEBUG=value)).debug is meaning
    # The doctor: a valid switch is no finding.
    doctor = Resolver(job_env(XACCT_DEBUG=value, XACCT_REPOSITORY="team/app"), {}, DOCTOR_OPTIONS)
    assert check_settings(doctor).status == "ok"
    # The CLI: debug mode shows the traceback of a refused run (here: no source).
    assert main(["push"], env={"XACCT_DEBUG": value}) == 2
    err = capsys.readouterr().err
    assert "gitlab-xacct: error: XACCT_SOURCE (--source): not set; give the image to push\n" in err
    assert ("Traceback" in err) is meaning
    # The credential helper: debug mode lets its info lines through to docker's stderr.
    out = io.StringIO()
    assert helper.main(["version"], {"XACCT_DEBUG": value}, io.StringIO(), out) == 0
    assert logging.getLogger("gitlab_xacct").isEnabledFor(logging.DEBUG) is meaning
    assert logging.getLogger("gitlab_xacct").isEnabledFor(logging.INFO) is meaning


def test_the_flag_wins_over_the_variable_at_the_cli_as_in_the_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["push", "--no-debug"], env={"XACCT_DEBUG": "true"}) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["push", "--debug"], env={"XACCT_DEBUG": "false"}) == 2
    assert "Traceback" in capsys.readouterr().err
    assert PushSettings.from_env(job_env(XACCT_DEBUG="true"), {"debug": False}).debug is False


@pytest.mark.parametrize(
    "argv",
    [
        ["push"],
        ["login"],
        ["credentials"],
        ["copy", "oci:/nowhere:latest", "docker://127.0.0.1:5000/team/app:1"],
        ["bootstrap", "role"],
        ["bootstrap", "build-policy"],
        ["gitlab", "configure"],
    ],
)
def test_a_bad_switch_is_one_line_and_exit_2_for_every_command(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv, env={"XACCT_DEBUG": "verbose"}) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", BAD)


def test_the_settings_refuse_a_bad_switch_in_the_same_words() -> None:
    with pytest.raises(Exception, match="^" + BAD.removeprefix("gitlab-xacct: error: ").strip()):
        PushSettings.from_env(job_env(XACCT_DEBUG="verbose"))


def test_the_doctor_lists_a_bad_switch_among_its_findings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"XACCT_DEBUG": "verbose", "XACCT_REGION": "Europe"}
    assert main(["doctor", "--json"], env=env) == 2
    settings = json.loads(capsys.readouterr().out)["checks"][0]
    assert settings["status"] == "FAIL"
    lines = settings["detail"].splitlines()
    assert BAD.removeprefix("gitlab-xacct: error: ").strip() in lines
    assert any(line.startswith("XACCT_REGION: 'Europe'") for line in lines)


def test_the_credential_helper_refuses_a_bad_switch_in_its_protocol() -> None:
    out = io.StringIO()
    assert helper.main(["version"], {"XACCT_DEBUG": "verbose"}, io.StringIO(), out) == 1
    assert out.getvalue() == (
        "docker-credential-xacct: XACCT_DEBUG: 'verbose' is not a boolean; use true or false\n"
    )
