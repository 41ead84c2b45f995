"""Debezium connector configs and the Kafka Connect REST client."""
