"""Datasource secrets at rest: AES-GCM under keys derived from `ENCRYPTION_KEY`.

A sealed value reads `v1.<key id>.<base64url(nonce + ciphertext)>`. The key id lets a
process that knows the previous keys (`ENCRYPTION_KEY_PREVIOUS`) open values sealed
before a rotation, while everything new is sealed under the current key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_FORMAT = "v1"
_NONCE_BYTES = 12


class SecretsError(Exception):
    """A sealed value could not be opened (unknown key, tampering, wrong record)."""


def _derive(material: str) -> bytes:
    # HKDF rather than the raw string: the configured key is a passphrase of any length,
    # AES-256 needs exactly 32 uniformly random bytes.
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"weaver datasource secrets v1"
    ).derive(material.encode())


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


class SecretBox:
    def __init__(self, current: str, previous: list[str] | None = None) -> None:
        self._current = _derive(current)
        self._current_id = _key_id(self._current)
        self._keys = {self._current_id: self._current}
        for material in previous or []:
            key = _derive(material)
            self._keys.setdefault(_key_id(key), key)

    def seal(self, secrets: dict[str, Any], *, bound_to: str) -> str:
        """Encrypt `secrets`; `bound_to` (tenant and name) is authenticated, not hidden,
        so a sealed value copied onto another record will not open."""
        if not secrets:
            return ""
        nonce = os.urandom(_NONCE_BYTES)
        plaintext = json.dumps(secrets, separators=(",", ":")).encode()
        ciphertext = AESGCM(self._current).encrypt(nonce, plaintext, bound_to.encode())
        token = base64.urlsafe_b64encode(nonce + ciphertext).decode().rstrip("=")
        return f"{_FORMAT}.{self._current_id}.{token}"

    def open(self, sealed: str, *, bound_to: str) -> dict[str, Any]:
        if not sealed:
            return {}
        try:
            version, key_id, token = sealed.split(".", 2)
        except ValueError:
            raise SecretsError("sealed value is malformed") from None
        if version != _FORMAT:
            raise SecretsError(f"unknown sealed format {version!r}")
        key = self._keys.get(key_id)
        if key is None:
            raise SecretsError(f"sealed under key {key_id}, which is not configured")
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        try:
            plaintext = AESGCM(key).decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], bound_to.encode()
            )
        except InvalidTag:
            raise SecretsError("sealed value failed authentication") from None
        result: dict[str, Any] = json.loads(plaintext)
        return result
