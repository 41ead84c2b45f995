"""The Faust app and its agents (embed, ingest, webhooks)."""
