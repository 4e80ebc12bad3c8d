"""The one-time key counts every /sync reports are cached per device, and devices whose
counts are alike share one value; a device's upload changes its own counts only."""

from __future__ import annotations

from ranvier.e2ee.keys import KeyService


class CountingStore:
    """One-time key counts per (user, device), as the database would count them."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], dict[str, int]] = {}
        self.reads = 0

    async def key_counts(self, user_id, device_id):
        self.reads += 1
        return dict(self.counts.get((user_id, device_id), {})), []


async def test_alike_counts_are_one_value_and_a_change_reaches_only_its_device():
    store = CountingStore()
    keys = KeyService(store, notifier=None, server_name="hs")
    store.counts = {("@a:hs", "A"): {"signed_curve25519": 50}, ("@b:hs", "B"): {"signed_curve25519": 50},
                    ("@c:hs", "C"): {"signed_curve25519": 7}}
    a, b, c = [await keys.key_counts(user, device) for user, device in (("@a:hs", "A"), ("@b:hs", "B"), ("@c:hs", "C"))]
    assert a is b, "alike counts are one object"
    assert a == ({"signed_curve25519": 50}, []) and c == ({"signed_curve25519": 7}, [])
    assert await keys.key_counts("@a:hs", "A") is a and store.reads == 3, "read from the cache"
    store.counts[("@a:hs", "A")] = {"signed_curve25519": 49}
    keys._forget_counts("@a:hs")  # as an upload or a claim does
    assert await keys.key_counts("@a:hs", "A") == ({"signed_curve25519": 49}, [])
    assert await keys.key_counts("@b:hs", "B") == ({"signed_curve25519": 50}, []), "the other device keeps its own"
    empty = await keys.key_counts("@d:hs", "D")
    assert empty == ({"signed_curve25519": 0}, []), "the algorithm clients wait for is always there"
