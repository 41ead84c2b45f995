"""librdkafka's log lines reach Python logging, never the process's stderr directly."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaException

from tidewire.kafka_clients import CLIENT_LOGGER_NAME, admin_client, forward_client_log

NOBODY_LISTENS = "127.0.0.1:1"


def test_a_refused_connection_is_logged_through_python_logging_not_printed(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=CLIENT_LOGGER_NAME)
    admin = admin_client(NOBODY_LISTENS)
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=1)
    assert capfd.readouterr().err == ""

    forward_client_log(admin)
    refused = [
        record
        for record in caplog.records
        if record.name == CLIENT_LOGGER_NAME and "Connection refused" in record.getMessage()
    ]
    assert refused and all(record.levelno == logging.ERROR for record in refused)
    assert capfd.readouterr().err == ""
