"""The seed's 2014 client-server draft, served under /matrix/client/api/v1.

A thin layer over the same services as today's API (rooms, users, sync, presence,
receipts, profiles, directory): a room, a user or a message made through either API is
seen through the other. How the draft's notions map onto today's is decided in
docs/legacy-api.md; `records.py` keeps the little the draft has that today's model has no
place for.
"""
