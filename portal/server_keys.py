"""The server's own secrets: the Flask secret key, and the key client secrets are hashed with.

Both live here (not in web/) because the CLI registers clients too and must hash their secrets
with the same key the token endpoint verifies them with.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from portal.settings import Settings

CLIENT_SECRET_KEY_INFO = b"acceso oidc client secret hmac v1"


class ServerKeyError(RuntimeError):
    """No secret key is configured and this is not dev mode."""


def server_secret_key(settings: Settings) -> str:
    """Production must set ACCESO_SECRET_KEY; dev keeps a generated one in the data dir."""
    if settings.secret_key:
        return settings.secret_key
    if not settings.dev_mode:
        raise ServerKeyError("ACCESO_SECRET_KEY must be set outside dev mode")
    path = Path(settings.data_dir) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


@lru_cache(maxsize=8)
def client_secret_key(settings: Settings) -> bytes:
    """The HMAC key for client secrets: HKDF-SHA256 of ACCESO_CLIENT_SECRET_KEY when set, else of
    the server secret key, so no new secret is required and one can be pinned before the secret
    key is rotated (set ACCESO_CLIENT_SECRET_KEY to the old ACCESO_SECRET_KEY)."""
    material = settings.client_secret_key or server_secret_key(settings)
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=CLIENT_SECRET_KEY_INFO
    ).derive(material.encode())
