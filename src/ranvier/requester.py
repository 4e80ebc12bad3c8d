"""Who is making a request: the result of authenticating an access token."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Requester:
    user_id: str
    device_id: str
    is_guest: bool
    #: The stored hash of the access token used, so logout can revoke exactly it.
    token_hash: str
    #: Account moderation (spec "Account locking" / "Account suspension").
    locked: bool = False
    suspended: bool = False
    #: The application service acting (with its as_token) as this user, if one is.
    app_service: str | None = None

    @property
    def transaction_scope(self) -> str:
        """What a transaction ID is unique within: the device, or the application service
        acting without one."""
        return self.device_id or (f"appservice:{self.app_service}" if self.app_service else "")
