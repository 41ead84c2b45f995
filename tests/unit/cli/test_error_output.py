"""Every CLI error is one line on stderr with a non-zero exit; --debug shows the traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tidewire.cli import main
from tidewire.errors import ConfigurationError, ServiceError


def test_a_configuration_error_is_one_line_and_exit_code_2(
    clean_tidewire_environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIDEWIRE_KAFKA__PORT", "99999")
    exit_code = main(["status", "--json"])
    captured = capsys.readouterr()
    assert exit_code == 2
    assert captured.out == ""
    assert captured.err.startswith("error: invalid settings: kafka.port (TIDEWIRE_KAFKA__PORT)")
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err


def test_debug_lets_the_error_through_with_its_traceback(
    clean_tidewire_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEWIRE_KAFKA__PORT", "99999")
    with pytest.raises(ConfigurationError):
        main(["--debug", "status"])


def test_a_usage_error_is_one_line_and_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: No such command 'no-such-command'.")
    assert error.count("\n") == 1


def test_a_bad_option_value_is_one_line_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--since", "garbage"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: Invalid value for '--since': 'garbage'")
    assert error.rstrip("\n").endswith("(see 'tidewire replay -h')")
    assert error.count("\n") == 1


def test_status_of_a_stack_that_never_ran_says_stopped(
    clean_tidewire_environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Ports nobody uses, so a developer's running stack cannot answer.
    monkeypatch.setenv("TIDEWIRE_KAFKA__PORT", "1")
    monkeypatch.setenv("TIDEWIRE_CONNECT__PORT", "2")
    assert main(["status", "--json"]) == 0
    assert '"postgres": "stopped"' in capsys.readouterr().out


def test_kafka_out_of_reach_is_one_line_without_librdkafkas_own(
    clean_tidewire_environment: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIDEWIRE_KAFKA__PORT", "1")
    monkeypatch.setattr("streams.dead_letter_store._TIMEOUT_S", 1.0)
    assert main(["dlq", "list"]) == 4
    error = capfd.readouterr().err
    assert error.startswith("error: cannot reach Kafka at 127.0.0.1:1")
    assert error.count("\n") == 1, error


def cli_in_a_process_of_its_own(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``tidewire <arguments>`` in a new interpreter (with this test's environment): what it writes
    on stderr, libraries' log lines included, is then all there, as a user would see it."""
    command = f"from tidewire.cli import main; raise SystemExit(main({list(arguments)!r}))"
    return subprocess.run([sys.executable, "-c", command], capture_output=True, text=True, timeout=60)


def test_kafka_connect_out_of_reach_is_one_line_without_the_retries_log(
    clean_tidewire_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a process of its own: pytest's log capture would take urllib3's warnings off stderr here.
    monkeypatch.setenv("TIDEWIRE_CONNECT__PORT", "2")
    result = cli_in_a_process_of_its_own("connector", "status")
    assert result.returncode == 5
    assert result.stderr.startswith("error: Kafka Connect at http://127.0.0.1:2 is unreachable")
    assert result.stderr.count("\n") == 1, result.stderr


def test_postgres_out_of_reach_is_one_line_for_the_keys_commands(
    clean_tidewire_environment: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIDEWIRE_POSTGRES__PORT", "1")
    assert main(["keys", "list"]) == 4
    error = capfd.readouterr().err
    assert error.startswith("error: cannot reach Postgres at 127.0.0.1:1 to manage API keys: ")
    assert error.count("\n") == 1, error


def test_postgres_out_of_reach_is_one_line_at_once_for_the_orphans_commands(
    clean_tidewire_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a process of its own: a pool's retry warnings would be captured by pytest here, unseen.
    monkeypatch.setenv("TIDEWIRE_POSTGRES__PORT", "1")
    result = cli_in_a_process_of_its_own("orphans", "list")
    assert result.returncode == 4
    assert result.stderr.startswith("error: cannot reach Postgres at 127.0.0.1:1 to look for orphans: ")
    assert result.stderr.count("\n") == 1, result.stderr


def test_a_config_file_given_with_config_reaches_the_processes_a_command_starts(
    clean_tidewire_environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Set through monkeypatch, so that what main() writes there is undone after the test.
    monkeypatch.setenv("TIDEWIRE_CONFIG", "elsewhere.toml")
    config = clean_tidewire_environment / "staging.toml"
    config.write_text("[kafka]\nport = 1\n\n[connect]\nport = 2\n")
    assert main(["--config", "staging.toml", "status", "--json"]) == 0
    # `up` starts the API and the workers as child processes: they inherit the variable.
    assert os.environ["TIDEWIRE_CONFIG"] == str(config.resolve())
    assert '"kafka_bootstrap": "127.0.0.1:1"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (
            ServiceError("kafka did not become ready: timed out; see /x/kafka.log\nlog line 1\nlog line 2"),
            "error: kafka did not become ready: timed out; see /x/kafka.log\n",
        ),
        (
            RuntimeError('syntax error at or near "x"\nLINE 1: SELECT x\n         ^'),
            'error: unexpected RuntimeError: syntax error at or near "x" (rerun with --debug for details)\n',
        ),
    ],
)
def test_a_multi_line_error_message_is_cut_to_its_first_line(
    clean_tidewire_environment: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: Exception,
    expected: str,
) -> None:
    def fail(self: object) -> None:
        raise raised

    monkeypatch.setattr("tidewire.runtime.stack.LocalStack.status", fail)
    assert main(["status"]) != 0
    assert capsys.readouterr().err == expected
