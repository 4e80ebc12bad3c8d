"""Talking to other Matrix servers: server keys, signed requests, the outbound transaction
sender, incoming transactions, joins and other membership handshakes, backfill, and the
remote side of media, profiles, directory and encryption keys. `federation_api/` serves
the endpoints other servers call; this package holds what they call into.
"""
