"""Payload encryption: every payload Temporal stores is AES-GCM ciphertext tagged with its key id.

ACCESO_CODEC_KEYS is ``kid1:base64key,kid2:base64key``; the first key encrypts and every key
decrypts, so a new key goes first and the old ones stay until no open workflow needs them.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from portal.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12


class CodecKeyError(ValueError):
    """The configured keys are malformed, missing, or do not include a payload's key id."""


def parse_keys(spec: str) -> list[tuple[str, bytes]]:
    """`kid:base64key,...` into (kid, key) pairs, in order, each key 16, 24 or 32 bytes."""
    keys: list[tuple[str, bytes]] = []
    for entry in (part.strip() for part in spec.split(",")):
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id:
            raise CodecKeyError("ACCESO_CODEC_KEYS entries must look like kid:base64key")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error as error:
            raise CodecKeyError(f"codec key {key_id!r} is not valid base64") from error
        if len(key) not in (16, 24, 32):
            raise CodecKeyError(f"codec key {key_id!r} must be 16, 24 or 32 bytes, not {len(key)}")
        if any(existing == key_id for existing, _ in keys):
            raise CodecKeyError(f"codec key id {key_id!r} appears twice")
        keys.append((key_id, key))
    return keys


def new_key_spec(key_id: str) -> str:
    """A fresh 256-bit key in the ACCESO_CODEC_KEYS format, for operators and the dev key file."""
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def codec_keys_for(settings: Settings) -> list[tuple[str, bytes]]:
    """The configured keys; in dev mode a key file made once under the data dir; else refuse."""
    if settings.codec_keys.strip():
        return parse_keys(settings.codec_keys)
    if not settings.dev_mode:
        raise CodecKeyError(
            "ACCESO_CODEC_KEYS must be set outside dev mode, as kid:base64key (make one with "
            "`python -c 'from portal.codec import new_key_spec; "
            'print(new_key_spec("k1"))\'`); payloads would otherwise reach Temporal in plaintext'
        )
    path = Path(settings.data_dir) / "codec.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_key_spec("dev1") + "\n")
    return parse_keys(path.read_text().strip())


class EncryptionCodec(PayloadCodec):
    """Encrypts with the first key; decrypts with whichever key id the payload names."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]):
        if not keys:
            raise CodecKeyError("the payload codec needs at least one key")
        self.key_id = keys[0][0]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.key_id].encrypt(
            nonce, payload.SerializeToString(), self.key_id.encode()
        )
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: self.key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """Payloads that are not ours (not `binary/encrypted`) pass through untouched."""
        if payload.metadata.get("encoding", b"") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecKeyError(
                f"payload encrypted with unknown key id {key_id!r}; "
                f"configured key ids: {', '.join(self._ciphers)} (add the old key to "
                "ACCESO_CODEC_KEYS after the current one)"
            )
        data = payload.data
        plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
        return Payload.FromString(plain)


def codec_for(settings: Settings) -> EncryptionCodec:
    return EncryptionCodec(codec_keys_for(settings))


@lru_cache(maxsize=8)
def at_rest_keys(settings: Settings) -> tuple[tuple[str, bytes], ...]:
    """The same keys seal secrets kept in the database (the first seals, every one unseals)."""
    return tuple(codec_keys_for(settings))


def seal(keys: Sequence[tuple[str, bytes]], data: bytes, context: bytes) -> str:
    """A secret at rest (`kid:base64(nonce+ciphertext)`), sealed with the first key; `context`
    binds it to its use, so a value sealed for one column cannot be passed off as another."""
    key_id, key = keys[0]
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, data, context)
    return f"{key_id}:{base64.b64encode(nonce + sealed).decode()}"


def sealed_with(value: str) -> str:
    """The key id a sealed value names (so a rotation can find what the old key sealed)."""
    return value.partition(":")[0]


def unseal(keys: Sequence[tuple[str, bytes]], value: str, context: bytes) -> bytes:
    """Opens a value from `seal` with whichever configured key it names."""
    key_id, _, blob = value.partition(":")
    key = dict(keys).get(key_id)
    if key is None:
        raise CodecKeyError(f"value sealed with codec key {key_id!r}, not in ACCESO_CODEC_KEYS")
    raw = base64.b64decode(blob)
    return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context)
