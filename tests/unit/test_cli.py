"""The CLI boundary: --help names the variables, bad input is one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gitlab_xacct import __version__
from gitlab_xacct.cli import main
from gitlab_xacct.config.push import PushSettings


def test_push_help_names_the_variable_behind_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["push", "--help"], env={})
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in PushSettings.OPTIONS:
        assert option.flag in text
        assert f"[{option.env}]" in text
    assert "exit codes:" in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"], env={})
    assert capsys.readouterr().out.strip() == f"gitlab-xacct {__version__}"


def test_bad_input_is_exit_2_and_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        ["push", "--role-arn", "arn:aws:iam::1:role/x"],
        env={
            "XACCT_SOURCE": "oci:/nowhere",
            "AWS_REGION": "eu-west-1",
            "XACCT_TAGS": "t",
            "XACCT_REPOSITORY": "team/app",
        },
    )
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("gitlab-xacct: error: --role-arn: ")
    assert "Traceback" not in captured.err


def test_missing_source_file_is_exit_2_before_any_aws_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {
        "XACCT_ROLE_ARN": "arn:aws:iam::222222222222:role/R",
        "XACCT_SOURCE": "oci-archive:/nonexistent/image.tar",
        "XACCT_REPOSITORY": "team/app",
        "AWS_REGION": "eu-west-1",
        "XACCT_TAGS": "t",
    }
    code = main(["push"], env=env)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("gitlab-xacct: error: XACCT_SOURCE: ")
    assert "/nonexistent/image.tar" in err
    assert "Traceback" not in err


def test_unknown_flag_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["push", "--role"], env={})
    assert exit_info.value.code == 2
    assert "--role" in capsys.readouterr().err


def test_copy_takes_every_flag_its_settings_read() -> None:
    """The parser and CopySettings share one option tuple: a variable copy reads always has its
    flag (the engine's --platform, --parallelism, --skip-existing-tags, timeouts, retries)."""
    from gitlab_xacct.cli import COMMANDS
    from gitlab_xacct.jobs.copy import CopySettings

    assert COMMANDS["copy"].options == CopySettings.OPTIONS
    assert {"--skip-existing-tags", "--platform", "--retries"} <= {
        o.flag for o in COMMANDS["copy"].options
    }


def test_a_flag_of_another_command_is_named_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["login", "--skip-existing-tags"], env={})
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--skip-existing-tags belongs to another command" in line
    assert "did you mean" not in line


# What the engine loads (the HTTP stack, AWS, GitLab's client); --version and --help need none.
_ENGINE = {"boto3", "botocore", "requests", "urllib3", "gitlab", "http"}


@pytest.mark.parametrize("words", [["--version"], ["--help"], ["push", "--help"]])
def test_version_and_help_load_no_engine(words: list[str]) -> None:
    code = (
        "import sys\nfrom gitlab_xacct.cli import main\n"
        f"try:\n    main({words!r}, env={{}})\nexcept SystemExit:\n    pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {_ENGINE!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
