"""The local, Docker-free runtime: Postgres, Kafka (KRaft) and Kafka Connect as processes on loopback.

`stack.LocalStack` starts them in order with readiness checks; each service lives in its own
module; `processes` holds the detached-process bookkeeping they share.
"""
