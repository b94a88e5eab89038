"""Pseudonymisation of direct identifiers with a keyed hash (HMAC-SHA256).

Silver and gold carry `member_key = HMAC(key, member_id)` instead of the member
id; names, addresses and dates of birth never leave bronze. The Spark side
computes the same HMAC in SQL from the pads below, so no Python UDF is needed
and every engine gives the identical value.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

_BLOCK_SIZE = 64  # SHA-256 block size in bytes


def pseudonymise(value: str, key: bytes) -> str:
    """Hex HMAC-SHA256 of a UTF-8 value: stable, not reversible without the key."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class HmacPads:
    """The inner and outer padded keys of RFC 2104, hex encoded."""

    inner_hex: str
    outer_hex: str


def hmac_pads(key: bytes) -> HmacPads:
    if not key:
        raise ValueError("the pseudonymisation key is empty")
    if len(key) > _BLOCK_SIZE:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK_SIZE, b"\0")
    return HmacPads(
        inner_hex=bytes(b ^ 0x36 for b in key).hex(),
        outer_hex=bytes(b ^ 0x5C for b in key).hex(),
    )
