"""Pseudonymization at the edge: patient ids become keyed hashes, direct identifiers never pass.

`patient_key = HMAC-SHA256(practice secret, "<system>|<patient id>")` as hex (docs/contracts.md):
stable for one practice, useless to anyone without the secret, and different between systems
on purpose (cross-system linking is not needed by any KPI). Rejected records are kept for a
person to fix them, so their direct identifiers are masked with `MASK` before they are stored.
"""

from __future__ import annotations

import hmac
from functools import lru_cache

MASK = "***"
_MISSING = object()


class Pseudonymizer:
    """Turns (system, patient id) into the warehouse's patient_key; caches repeated ids."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self.key = lru_cache(maxsize=1 << 18)(self._key)

    def keys(self, system: str, patient_ids: list[str | None]) -> list[str | None]:
        """`key` of each id, for a column of them: OpenSSL's one-shot HMAC, each distinct id once
        (a tenth of the time of `key` per id); the same values as `key`."""
        done: dict[str | None, str | None] = {None: None}
        out: list[str | None] = []
        for patient_id in patient_ids:
            found = done.get(patient_id, _MISSING)
            if found is _MISSING:
                value = str(patient_id).strip()
                found = hmac.digest(self._secret, f"{system}|{value}".encode(), "sha256").hex() if value else None
                done[patient_id] = found
            out.append(found)
        return out

    def _key(self, system: str, patient_id: str | None) -> str | None:
        if patient_id is None:
            return None
        value = str(patient_id).strip()
        if not value:
            return None
        return hmac.digest(self._secret, f"{system}|{value}".encode(), "sha256").hex()  # OpenSSL's one-shot HMAC
