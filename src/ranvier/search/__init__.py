"""Search: the full-text index of messages, room names and topics (SQLite FTS5 or
PostgreSQL full-text search), written as events are stored, and POST /search over it."""
