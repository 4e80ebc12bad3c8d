"""The pure Matrix event model: room versions, canonical JSON, hashes, signatures,
redaction, authorisation rules, state resolution and the client format. No I/O."""
