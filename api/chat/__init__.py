"""Grounded chat: retrieval, a provider chain (OpenAI-compatible endpoints, the offline extractive
provider), the semantic answer cache, and the orchestration that yields typed chat events."""
