"""End-to-end encryption for bots: Olm and Megolm through vodozemac (the ``e2e`` extra).

The extra (``pip install './packaging/granolin[e2e]'``, or ``'.[e2e]'`` with
ranvier) installs vodozemac, and every client then
encrypts and decrypts in encrypted rooms (``Client(..., encryption=False)``
turns it off). Without it, a client warns once per encrypted room that it
cannot read it. Only :func:`encryption_class` and :func:`attachment_cipher` are
imported by the client; the modules that need vodozemac (or, for attachments,
the cryptography package) are imported when they are installed.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from ..errors import GranolinError
from .store import CryptoStoreError, store_path_for

if TYPE_CHECKING:
    from .machine import Encryption

__all__ = ["CryptoStoreError", "attachment_cipher", "encryption_class", "store_path_for"]


def encryption_class() -> type[Encryption] | None:
    """The :class:`~granolin.e2ee.machine.Encryption` class, or None when vodozemac is not installed."""
    try:
        importlib.import_module("vodozemac")
    except ImportError:
        return None
    from .machine import Encryption

    return Encryption


def attachment_cipher() -> ModuleType:
    """:mod:`granolin.e2ee.attachments`; a GranolinError naming the extra when the cryptography package is missing."""
    try:
        return importlib.import_module(".attachments", __name__)
    except ImportError as exc:
        raise GranolinError("encrypted attachments need the cryptography package: install granolin[e2e]") from exc
