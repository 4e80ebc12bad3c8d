"""The server-server API (/_matrix/federation): one module per spec area, mounted by server.py."""
