"""The lowest service layer: stream positions and the notifier.

Every service publishes here and every reader waits here; it imports no other service, so
writers (rooms, users, e2ee) and readers (sync) meet without importing each other.
"""
