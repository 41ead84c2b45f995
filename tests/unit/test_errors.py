import psycopg
import pytest

from tidewire.errors import ServiceError, first_line
from tidewire.settings import PostgresSettings


def test_postgres_unreachable_names_the_address_the_purpose_and_what_to_check() -> None:
    settings = PostgresSettings(host="db.internal", port=6543)
    driver_error = psycopg.OperationalError(
        'connection failed: connection to server at "db.internal", port 6543 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?"
    )

    error = ServiceError.postgres_unreachable(settings, driver_error, "to prune answers")

    assert error.message == (
        "cannot reach Postgres at db.internal:6543 to prune answers: connection failed: connection to "
        'server at "db.internal", port 6543 failed: Connection refused; is the stack up (`tidewire status`)?'
    )
    assert "\n" not in error.message
    assert error.exit_code == ServiceError.exit_code


@pytest.mark.parametrize("text", ["", "  \n "])
def test_postgres_unreachable_names_the_error_type_when_the_driver_says_nothing(text: str) -> None:
    error = ServiceError.postgres_unreachable(PostgresSettings(), psycopg.OperationalError(text))

    assert "OperationalError; is the stack up" in error.message
    assert error.message.startswith("cannot reach Postgres at 127.0.0.1:")


def test_first_line_quotes_the_first_non_empty_line_or_the_errors_type() -> None:
    assert first_line(ValueError('syntax error at or near "x"\nLINE 1: SELECT x\n         ^')) == (
        'syntax error at or near "x"'
    )
    assert first_line("\n  first\nsecond") == "first"
    assert first_line(TimeoutError()) == "TimeoutError"
    assert first_line("") == ""
