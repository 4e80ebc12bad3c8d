"""End-to-end encryption for bots: Olm and Megolm through vodozemac (the ``e2e`` extra).

The extra (``pip install './packaging/granolin[e2e]'``, or ``'.[e2e]'`` with
ranvier) installs vodozemac, and every client then
encrypts and decrypts in encrypted rooms (``Client(..., encryption=False)``
turns it off). Without it, a client warns once per encrypted room that it
cannot read it. Only :func:`encryption_class` is imported by the client; the
modules that need vodozemac are imported when it is installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .store import CryptoStoreError, store_path_for

if TYPE_CHECKING:
    from .machine import Encryption

__all__ = ["CryptoStoreError", "encryption_class", "store_path_for"]


def encryption_class() -> type[Encryption] | None:
    """The :class:`~granolin.e2ee.machine.Encryption` class, or None when vodozemac is not installed."""
    try:
        importlib.import_module("vodozemac")
    except ImportError:
        return None
    from .machine import Encryption

    return Encryption
