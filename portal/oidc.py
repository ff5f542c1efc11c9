"""The OpenID Connect provider's state, shared by the web tier, the CLI and the worker.

Clients, signing keys, opaque subjects, grants (token families) and the claims each scope
releases. Nothing here talks to Temporal: the token endpoint is a hot path on the database alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.jwk import ECKey, JWKRegistry, KeySet, RSAKey
from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from portal.codec import codec_keys_for
from portal.models import (
    MemberRecord,
    Office,
    OidcClient,
    OidcGrant,
    OidcSigningKey,
    OidcSubject,
    Role,
    User,
    utcnow,
)
from portal.passwords import verify_password
from portal.settings import Settings
from portal.smart import check_scopes


class SigningAlg(StrEnum):
    """The algorithms ID, access and logout tokens are signed with; a client picks one."""

    ES256 = "ES256"
    RS256 = "RS256"


ALG = SigningAlg.ES256
"""The default: the smallest keys and signatures; RS256 is for libraries that assume it."""
RSA_BITS = 2048
CODE_SECONDS = 60
ACCESS_TOKEN_SECONDS = 300
ID_TOKEN_SECONDS = 300
REFRESH_TOKEN_DAYS = 30
LOGOUT_TOKEN_SECONDS = 120
RETIRED_KEY_PUBLISHED = timedelta(hours=1)
"""Longer than any token a retired key signed (5 minutes), so no valid token loses its key."""
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"

BASE_SCOPES = ("openid", "profile", "email", "roles", "offline_access")
FLOW_SCOPES = {
    "provider": ("office", "office_identifiers"),
    "member": ("member_id",),
    "patient": ("proxy",),
}


def supported_scopes(flow: str) -> tuple[str, ...]:
    return BASE_SCOPES + FLOW_SCOPES.get(flow, ())


def issuer_for(base_url: str, portal: str) -> str:
    return f"{base_url.rstrip('/')}/{portal}"


class ClientError(Exception):
    """Why a client cannot be added or changed; the CLI prints it as is."""


@dataclass
class NewClient:
    client: OidcClient
    secret: str | None


CLIENT_SECRET_HMAC = "hmac-sha256$"
"""How a client secret is stored: a keyed SHA-256. A secret is 256 random bits, so a slow hash
adds nothing to it; the key (portal.server_keys) means a copied table alone tests no guess."""
LEGACY_ARGON2 = "$argon2"


def hash_client_secret(key: bytes, secret: str) -> str:
    return CLIENT_SECRET_HMAC + hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


def client_secret_matches(
    session: Session, key: bytes, client: OidcClient | ApiClient, secret: str
) -> bool:
    """Whether `secret` is the client's. A secret still stored as argon2id (before keyed hashes)
    is checked that way once and, when it matches, rewritten as the keyed hash; the rewrite is
    conditional on the stored value, so concurrent first uses all pass and only one writes."""
    stored = client.secret_hash
    typed = hash_client_secret(key, secret)
    if stored is None or not secret:
        return False
    if stored.startswith(CLIENT_SECRET_HMAC):
        return hmac.compare_digest(stored, typed)
    if not stored.startswith(LEGACY_ARGON2) or not verify_password(stored, secret):
        return False
    session.execute(
        update(OidcClient)
        .where(OidcClient.id == client.id, OidcClient.secret_hash == stored)
        .values(secret_hash=typed)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return True


def _is_private_use_scheme(scheme: str) -> bool:
    """RFC 8252 7.1: a native app's own scheme is a reversed domain name, e.g. com.example.app."""
    labels = scheme.split(".")
    return len(labels) > 1 and all(
        label and label.replace("-", "").isalnum() and label.isascii() for label in labels
    )


def _check_uri(uri: str, public: bool = False) -> str:
    if len(uri) > 500:
        raise ClientError(f"URI longer than 500 characters: {uri[:60]}...")
    if "#" in uri or "*" in uri:
        raise ClientError(f"a URI may have no fragment or wildcard: {uri}")
    scheme = uri.partition(":")[0].lower()
    if uri.startswith(("https://", "http://")):
        return uri
    if public and _is_private_use_scheme(scheme) and uri[len(scheme) + 1 :].startswith("/"):
        return uri
    raise ClientError(
        f"not an absolute http(s) URI (or, for a public client, a private-use scheme such as "
        f"com.example.app:/callback): {uri}"
    )


def redirect_uri_registered(client: OidcClient, uri: str) -> bool:
    """Exact match; for a public client a loopback redirect (127.0.0.1 or [::1], not `localhost`,
    RFC 8252 8.3) matches on any port (7.3): a native app gets a free port each time it asks."""
    if uri in client.redirect_uris:
        return True
    if not client.public or not uri.startswith("http://"):
        return False
    asked = _without_port(uri)
    return asked is not None and any(_without_port(r) == asked for r in client.redirect_uris)


def _without_port(uri: str) -> str | None:
    """A loopback URI with its port left out, or None for any other URI."""
    parts = urlsplit(uri)
    try:
        host, _ = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or "@" in parts.netloc or host not in ("127.0.0.1", "::1"):
        return None
    return parts._replace(netloc="[::1]" if host == "::1" else host).geturl()


def origin_of(uri: str) -> str | None:
    """The web origin of an http(s) URI (scheme://host[:port]), None for a private-use scheme."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def _check_origin(origin: str) -> str:
    if origin_of(origin) != origin.lower() or "@" in origin:
        raise ClientError(f"not an origin (scheme://host[:port], no path): {origin}")
    return origin.lower()


def client_origins(client: OidcClient) -> set[str]:
    """Where a browser app of this public client runs: its redirect URIs' origins and any
    registered explicitly; a confidential client talks server to server and has none."""
    if not client.public:
        return set()
    derived = {origin_of(uri) for uri in client.redirect_uris}
    return {o for o in derived if o} | set(client.allowed_origins or [])


def add_client(
    session: Session,
    name: str,
    *,
    portal: str,
    redirect_uris: list[str],
    secret_key: bytes | None = None,
    public: bool = False,
    first_party: bool = False,
    post_logout_redirect_uris: list[str] | None = None,
    backchannel_logout_uri: str | None = None,
    signing_alg: str = ALG,
    allowed_origins: list[str] | None = None,
    approved_scopes: list[str] | None = None,
) -> NewClient:
    """Registers a client; a confidential one gets a secret shown once and stored as an HMAC with
    `secret_key` (portal.server_keys.client_secret_key). Without `secret_key` a confidential
    client has no secret at all until `rotate_client_secret` mints one (an approved app's
    client is made so, its secret minted only on its credentials page).

    `approved_scopes` (a SMART app's) lists every scope it may ask for, OpenID ones included."""
    if session.scalar(select(OidcClient).where(OidcClient.name == name)):
        raise ClientError(f"a client named {name!r} already exists")
    if not redirect_uris:
        raise ClientError("at least one --redirect-uri is needed")
    if signing_alg not in set(SigningAlg):
        raise ClientError(f"signing algorithm must be one of {', '.join(SigningAlg)}")
    if allowed_origins and not public:
        raise ClientError("only a public client (a browser app) has allowed origins")
    if approved_scopes is not None:
        approved_scopes = list(dict.fromkeys(approved_scopes))
        problem = check_scopes(approved_scopes)
        if problem:
            raise ClientError(problem)
    secret = None if public or secret_key is None else secrets.token_urlsafe(32)
    client = OidcClient(
        name=name,
        portal=portal,
        client_id=secrets.token_urlsafe(18),
        secret_hash=None,
        public=public,
        first_party=first_party,
        redirect_uris=[_check_uri(u, public) for u in redirect_uris],
        signing_alg=SigningAlg(signing_alg),
        allowed_origins=sorted({_check_origin(o) for o in allowed_origins or []}),
        approved_scopes=approved_scopes,
        post_logout_redirect_uris=[_check_uri(u, public) for u in post_logout_redirect_uris or []],
        backchannel_logout_uri=_check_uri(backchannel_logout_uri)
        if backchannel_logout_uri
        else None,
    )
    if secret is not None and secret_key is not None:
        client.secret_hash = hash_client_secret(secret_key, secret)
    session.add(client)
    session.flush()
    return NewClient(client, secret)


def rotate_client_secret(session: Session, name: str, secret_key: bytes) -> str:
    client = session.scalar(select(OidcClient).where(OidcClient.name == name))
    if client is None:
        raise ClientError(f"no client named {name!r}")
    if client.public:
        raise ClientError(f"{name!r} is a public client: it has no secret")
    secret = secrets.token_urlsafe(32)
    client.secret_hash = hash_client_secret(secret_key, secret)
    return secret


def remove_client(session: Session, name: str) -> None:
    client = session.scalar(select(OidcClient).where(OidcClient.name == name))
    if client is None:
        raise ClientError(f"no client named {name!r}")
    session.delete(client)


# --- signing keys ---------------------------------------------------------------------------


SealingKeys = list[tuple[str, bytes]]
SEAL_CONTEXT = b"acceso oidc signing key"


@lru_cache(maxsize=8)
def sealing_keys(settings: Settings) -> SealingKeys:
    """The payload-encryption keys (ACCESO_CODEC_KEYS): the first seals, every one unseals."""
    return codec_keys_for(settings)


def _seal(keys: SealingKeys, private: dict[str, Any]) -> str:
    kid, key = keys[0]
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, json.dumps(private).encode(), SEAL_CONTEXT)
    return f"{kid}:{base64.b64encode(nonce + sealed).decode()}"


def _unseal(keys: SealingKeys, sealed: str) -> dict[str, Any]:
    kid, _, blob = sealed.partition(":")
    key = dict(keys).get(kid)
    if key is None:
        raise RuntimeError(f"signing key sealed with codec key {kid!r}, not in ACCESO_CODEC_KEYS")
    raw = base64.b64decode(blob)
    return json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], SEAL_CONTEXT))


SigningKey = ECKey | RSAKey


def _generate(alg: SigningAlg, kid: str) -> SigningKey:
    parameters = {"kid": kid, "alg": alg.value, "use": "sig"}
    if alg is SigningAlg.RS256:
        return RSAKey.generate_key(RSA_BITS, parameters=parameters)
    return ECKey.generate_key("P-256", parameters=parameters)


def _new_key(session: Session, keys: SealingKeys, alg: SigningAlg) -> OidcSigningKey:
    kid = secrets.token_urlsafe(12)
    key = _generate(alg, kid)
    row = OidcSigningKey(
        kid=kid,
        alg=alg.value,
        jwk={
            "public": key.as_dict(private=False),
            "sealed": _seal(keys, key.as_dict(private=True)),
        },
    )
    session.add(row)
    session.flush()
    return row


def rotate_keys(session: Session, keys: SealingKeys) -> list[OidcSigningKey]:
    """A new key per algorithm; the previous ones retire but stay published for
    RETIRED_KEY_PUBLISHED."""
    now = utcnow()
    session.execute(
        update(OidcSigningKey).where(OidcSigningKey.retired_at.is_(None)).values(retired_at=now)
    )
    return [_new_key(session, keys, alg) for alg in SigningAlg]


def _current_key_row(session: Session, alg: SigningAlg) -> OidcSigningKey | None:
    return session.scalar(
        select(OidcSigningKey)
        .where(OidcSigningKey.retired_at.is_(None), OidcSigningKey.alg == alg.value)
        .order_by(OidcSigningKey.created_at.desc())
        .limit(1)
    )


def ensure_signing_keys(session: Session, keys: SealingKeys) -> list[OidcSigningKey]:
    """Makes a key for each algorithm that has none, and commits: JWKS is never empty, so a
    relying party that loads it before the first sign-in can check the first ID token.
    `acceso migrate` calls it; the JWKS endpoint does too, for a database migrated without it."""
    made = [
        _new_key(session, keys, alg) for alg in SigningAlg if not _current_key_row(session, alg)
    ]
    if made:
        session.commit()
    return made


_PRIVATE: dict[str, SigningKey] = {}
_PUBLIC: dict[str, SigningKey] = {}
"""Parsed keys by kid: a key never changes once made, and unsealing one costs more than signing."""


@dataclass(frozen=True)
class ApiClient:
    """What the token, revocation and introspection endpoints need of a client: read with one
    Core select of these columns, not the whole ORM row (its URI lists and JSON parsed)."""

    id: int
    client_id: str
    portal: str
    public: bool
    first_party: bool
    secret_hash: str | None
    signing_alg: str


@dataclass(frozen=True)
class CurrentKey:
    """The newest unretired signing key of an algorithm, as stored (still sealed)."""

    kid: str
    alg: str
    jwk: dict[str, Any]


_API_CLIENT_COLUMNS = (
    OidcClient.id,
    OidcClient.client_id,
    OidcClient.portal,
    OidcClient.public,
    OidcClient.first_party,
    OidcClient.secret_hash,
    OidcClient.signing_alg,
)
_API_CLIENT = select(*_API_CLIENT_COLUMNS).where(OidcClient.client_id == bindparam("client_id"))
_API_CLIENT_WITH_SIGNING_KEY = (
    select(*_API_CLIENT_COLUMNS, OidcSigningKey.kid, OidcSigningKey.alg, OidcSigningKey.jwk)
    .outerjoin(
        OidcSigningKey,
        and_(
            OidcSigningKey.alg == OidcClient.signing_alg,
            OidcSigningKey.retired_at.is_(None),
        ),
    )
    .where(OidcClient.client_id == bindparam("client_id"))
    .order_by(OidcSigningKey.created_at.desc())
    .limit(1)
)
"""Built once: the token endpoint runs one of these on every request."""
_CLIENT_FIELDS = len(_API_CLIENT_COLUMNS)


def api_client(session: Session, client_id: str) -> ApiClient | None:
    """A client by its client_id, as the API endpoints need it."""
    found = session.connection().execute(_API_CLIENT, {"client_id": client_id}).first()
    return ApiClient(*found) if found else None


def client_with_signing_key(
    session: Session, client_id: str
) -> tuple[ApiClient, CurrentKey | None] | None:
    """A client by its client_id and, in the same query, the newest unretired key of its
    signing algorithm (None while there is none): the token endpoint needs both every time."""
    found = (
        session.connection().execute(_API_CLIENT_WITH_SIGNING_KEY, {"client_id": client_id}).first()
    )
    if found is None:
        return None
    kid, alg, jwk = found[_CLIENT_FIELDS:]
    return ApiClient(*found[:_CLIENT_FIELDS]), (CurrentKey(kid, alg, jwk) if kid else None)


def signing_key(
    session: Session,
    keys: SealingKeys,
    alg: str = ALG,
    current: OidcSigningKey | CurrentKey | None = None,
) -> SigningKey:
    """The newest unretired key of the algorithm (`current`, when the caller loaded it with
    `client_with_signing_key`), made on first use if the start did not.

    Call it before writing anything else in the transaction: making a key commits.
    """
    row = current if current is not None and current.alg == alg else None
    row = row or _current_key_row(session, SigningAlg(alg))
    if row is None:
        row = _new_key(session, keys, SigningAlg(alg))
        session.commit()
    key = _PRIVATE.get(row.kid)
    if key is None:
        key = _PRIVATE[row.kid] = JWKRegistry.import_key(_unseal(keys, row.jwk["sealed"]))
    return key


def _published_rows(session: Session) -> list[OidcSigningKey]:
    since = utcnow() - RETIRED_KEY_PUBLISHED
    return list(
        session.scalars(
            select(OidcSigningKey)
            .where(or_(OidcSigningKey.retired_at.is_(None), OidcSigningKey.retired_at > since))
            .order_by(OidcSigningKey.created_at.desc())
        ).all()
    )


def _public_key(row: OidcSigningKey) -> SigningKey:
    key = _PUBLIC.get(row.kid)
    if key is None:
        key = _PUBLIC[row.kid] = JWKRegistry.import_key(row.jwk["public"])
    return key


def published_keys(session: Session) -> KeySet:
    return KeySet([_public_key(row) for row in _published_rows(session)])


def jwks(session: Session) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in published_keys(session).keys]}


VERIFYING_KEYS_SECONDS = 60.0
"""How long a process trusts its list of published keys before reading it again. A key another
process made is read at once (an unknown `kid` reloads the list); a retirement is seen within
this long, far inside the hour a retired key stays published anyway."""


@dataclass(frozen=True)
class _Verifying:
    keys: dict[str, tuple[SigningKey, datetime | None]]
    loaded_at: float


_verifying = _Verifying({}, float("-inf"))


def _verifying_key(session: Session, kid: str) -> SigningKey | None:
    """The published key named `kid`, from the process's list, which is read again when older
    than VERIFYING_KEYS_SECONDS or when it lacks the kid: checking a token costs no query."""
    global _verifying
    known = _verifying
    if kid not in known.keys or time.monotonic() - known.loaded_at > VERIFYING_KEYS_SECONDS:
        rows = _published_rows(session)
        known = _verifying = _Verifying(
            {row.kid: (_public_key(row), row.retired_at) for row in rows}, time.monotonic()
        )
    entry = known.keys.get(kid)
    if entry is None:
        return None
    key, retired_at = entry
    if retired_at is not None and retired_at <= utcnow() - RETIRED_KEY_PUBLISHED:
        return None
    return key


def _alg_of(key: SigningKey) -> str:
    return SigningAlg.RS256 if isinstance(key, RSAKey) else SigningAlg.ES256


_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_SHA256 = hashes.SHA256()
_ES256_HALF = 32
"""ES256 signatures are r || s, 32 bytes each (RFC 7518 3.4)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    """Unpadded base64url, strictly: any other character makes the token invalid."""
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def sign(key: SigningKey, claims: dict[str, Any], typ: str = "JWT") -> str:
    """A compact JWS (RFC 7515) made with `cryptography` directly: the token endpoint signs two
    per request, and a generic JOSE library's checks and registries cost more than the
    signature. Relying parties verify these with any JOSE library (the tests use joserfc)."""
    header = {"alg": _alg_of(key), "kid": key.kid, "typ": typ}
    signing_input = f"{_b64(_json(header))}.{_b64(_json(claims))}".encode("ascii")
    if isinstance(key, RSAKey):
        signature = key.private_key.sign(signing_input, PKCS1v15(), _SHA256)
    else:
        r, s = decode_dss_signature(key.private_key.sign(signing_input, ECDSA(_SHA256)))
        signature = r.to_bytes(_ES256_HALF, "big") + s.to_bytes(_ES256_HALF, "big")
    return f"{signing_input.decode('ascii')}.{_b64(signature)}"


def _signature_holds(key: SigningKey, signing_input: bytes, signature: bytes) -> bool:
    try:
        if isinstance(key, RSAKey):
            key.public_key.verify(signature, signing_input, PKCS1v15(), _SHA256)
        else:
            if len(signature) != 2 * _ES256_HALF:
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:_ES256_HALF], "big"),
                int.from_bytes(signature[_ES256_HALF:], "big"),
            )
            key.public_key.verify(der, signing_input, ECDSA(_SHA256))
    except InvalidSignature:
        return False
    return True


def decode(session: Session, token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The header and claims of a token this provider signed with a published key, or None.

    The algorithm is the key's, never the header's choice (a header naming another is refused),
    and a header with `crit` is refused (no extension is understood). Only the signature is
    checked here; callers check `iss`, `exp` and what the token is for.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_unb64(parts[0]))
        signature = _unb64(parts[2])
    except ValueError:
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    key = _verifying_key(session, kid) if isinstance(kid, str) else None
    if key is None or header.get("alg") != _alg_of(key) or "crit" in header:
        return None
    if not _signature_holds(key, f"{parts[0]}.{parts[1]}".encode("ascii"), signature):
        return None
    try:
        claims = json.loads(_unb64(parts[1]))
    except ValueError:
        return None
    if not isinstance(claims, dict):
        return None
    return header, claims


# --- subjects and claims --------------------------------------------------------------------


def subject_for(session: Session, user_id: int) -> str:
    row = session.get(OidcSubject, user_id)
    if row is None:
        row = OidcSubject(user_id=user_id, subject=secrets.token_urlsafe(24))
        session.add(row)
        session.flush()
    return row.subject


def claims_for(
    session: Session, user: User, scopes: set[str], subject: str | None = None
) -> dict[str, Any]:
    """What each granted scope releases; nothing outside this list ever leaves Acceso. The
    caller may pass the subject it already read with the account."""
    claims: dict[str, Any] = {"sub": subject or subject_for(session, user.id)}
    if "profile" in scopes:
        claims.update(preferred_username=user.username, name=user.display_name, locale=user.locale)
    if "email" in scopes:
        claims.update(email=user.email, email_verified=user.activated_at is not None)
    if "roles" in scopes:
        claims.update(portal=user.portal, roles=[user.role])
    if "office" in scopes and user.office_id is not None:
        office = session.get(Office, user.office_id)
        if office is not None:
            relationship = (
                "primary_registrant" if user.role == Role.PROVIDER_PRIMARY else "employee"
            )
            claims["office"] = {"name": office.organization_name, "relationship": relationship}
            if "office_identifiers" in scopes:
                claims["office"].update(npi=office.npi, tax_id=office.tax_id)
    if "member_id" in scopes and user.client_id:
        record = session.scalar(
            select(MemberRecord).where(
                MemberRecord.portal == user.portal, MemberRecord.client_id == user.client_id
            )
        )
        claims["member_client_id"] = record.client_id if record else user.client_id
    return claims


# --- grants ---------------------------------------------------------------------------------


def revoke_grant(session: Session, grant_id: str, now: datetime | None = None) -> None:
    session.execute(
        update(OidcGrant)
        .where(OidcGrant.id == grant_id, OidcGrant.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )


def revoke_user_grants(
    session: Session,
    user_id: int,
    keep_offline: bool = False,
    *,
    acting_for: str | None = None,
    health_apps_only: bool = False,
) -> list[OidcClient]:
    """Ends every token family of the account (but health apps' offline access when
    `keep_offline`; only those signed in under the proxy grant `acting_for`, if given; only the
    health apps given a patient record, if `health_apps_only`); returns the clients it had
    signed in to. Only live families are touched, so a repeat ends nothing more."""
    now = utcnow()
    query = select(OidcGrant).where(OidcGrant.user_id == user_id, OidcGrant.revoked_at.is_(None))
    if keep_offline:
        query = query.where(OidcGrant.offline.is_(False))
    if acting_for is not None:
        query = query.where(OidcGrant.acting_for == acting_for)
    if health_apps_only:
        query = query.where(OidcGrant.patient.is_not(None))
    grants = session.scalars(query).all()
    client_pks = {grant.client_pk for grant in grants}
    for grant in grants:
        grant.revoked_at = now
    if not client_pks:
        return []
    return list(session.scalars(select(OidcClient).where(OidcClient.id.in_(client_pks))).all())


def revoke_client_grants(session: Session, user_id: int, client_pk: int) -> OidcClient | None:
    """Ends the account's token families with one client; returns the client if any was live."""
    revoked = session.execute(
        update(OidcGrant)
        .where(
            OidcGrant.user_id == user_id,
            OidcGrant.client_pk == client_pk,
            OidcGrant.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    ).rowcount
    return session.get(OidcClient, client_pk) if revoked else None


def session_sid(session_row_id: str) -> str:
    """The `sid` clients see for one sign-in session: derived from the stored (already hashed)
    session id, so it names the session without revealing anything that would open it."""
    digest = hashlib.sha256(b"acceso oidc sid:" + session_row_id.encode()).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def revoke_session_grants(
    session: Session, user_id: int, sid: str
) -> list[tuple[OidcClient, str | None]]:
    """Ends the token families one sign-in session started (and any made before grants had a
    `sid`), except offline access, which outlives the session by design; returns each client
    with the sid its logout token names (None: every session)."""
    now = utcnow()
    grants = session.scalars(
        select(OidcGrant).where(
            OidcGrant.user_id == user_id,
            OidcGrant.revoked_at.is_(None),
            OidcGrant.offline.is_(False),
            or_(OidcGrant.sid == sid, OidcGrant.sid.is_(None)),
        )
    ).all()
    for grant in grants:
        grant.revoked_at = now
    owed = {(grant.client_pk, grant.sid) for grant in grants}
    if not owed:
        return []
    clients = {
        client.id: client
        for client in session.scalars(
            select(OidcClient).where(OidcClient.id.in_({pk for pk, _ in owed}))
        )
    }
    return [(clients[pk], grant_sid) for pk, grant_sid in sorted(owed, key=str)]
