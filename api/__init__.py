"""The FastAPI read side: search, chat over SSE, live events."""
