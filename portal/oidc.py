"""The OpenID Connect provider's state, shared by the web tier, the CLI and the worker.

Clients, signing keys, opaque subjects, grants (token families) and the claims each scope
releases. Nothing here talks to Temporal: the token endpoint is a hot path on the database alone.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import or_, select, update
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
from portal.passwords import hash_password
from portal.settings import Settings

ALG = "ES256"
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


def _check_uri(uri: str) -> str:
    if len(uri) > 500:
        raise ClientError(f"URI longer than 500 characters: {uri[:60]}...")
    if not uri.startswith(("https://", "http://")) or "#" in uri or "*" in uri:
        raise ClientError(f"not an absolute http(s) URI without fragment or wildcard: {uri}")
    return uri


def add_client(
    session: Session,
    name: str,
    *,
    portal: str,
    redirect_uris: list[str],
    public: bool = False,
    first_party: bool = False,
    post_logout_redirect_uris: list[str] | None = None,
    backchannel_logout_uri: str | None = None,
) -> NewClient:
    """Registers a client; a confidential one gets a secret shown once and stored as argon2id."""
    if session.scalar(select(OidcClient).where(OidcClient.name == name)):
        raise ClientError(f"a client named {name!r} already exists")
    if not redirect_uris:
        raise ClientError("at least one --redirect-uri is needed")
    secret = None if public else secrets.token_urlsafe(32)
    client = OidcClient(
        name=name,
        portal=portal,
        client_id=secrets.token_urlsafe(18),
        secret_hash=hash_password(secret) if secret else None,
        public=public,
        first_party=first_party,
        redirect_uris=[_check_uri(u) for u in redirect_uris],
        post_logout_redirect_uris=[_check_uri(u) for u in post_logout_redirect_uris or []],
        backchannel_logout_uri=_check_uri(backchannel_logout_uri)
        if backchannel_logout_uri
        else None,
    )
    session.add(client)
    session.flush()
    return NewClient(client, secret)


def rotate_client_secret(session: Session, name: str) -> str:
    client = session.scalar(select(OidcClient).where(OidcClient.name == name))
    if client is None:
        raise ClientError(f"no client named {name!r}")
    if client.public:
        raise ClientError(f"{name!r} is a public client: it has no secret")
    secret = secrets.token_urlsafe(32)
    client.secret_hash = hash_password(secret)
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


def _new_key(session: Session, keys: SealingKeys) -> OidcSigningKey:
    kid = secrets.token_urlsafe(12)
    key = ECKey.generate_key("P-256", parameters={"kid": kid, "alg": ALG, "use": "sig"})
    row = OidcSigningKey(
        kid=kid,
        alg=ALG,
        jwk={
            "public": key.as_dict(private=False),
            "sealed": _seal(keys, key.as_dict(private=True)),
        },
    )
    session.add(row)
    session.flush()
    return row


def rotate_keys(session: Session, keys: SealingKeys) -> OidcSigningKey:
    """A new signing key; the previous ones retire but stay published for RETIRED_KEY_PUBLISHED."""
    now = utcnow()
    session.execute(
        update(OidcSigningKey).where(OidcSigningKey.retired_at.is_(None)).values(retired_at=now)
    )
    return _new_key(session, keys)


_PRIVATE: dict[str, ECKey] = {}
_PUBLIC: dict[str, ECKey] = {}
"""Parsed keys by kid: a key never changes once made, and unsealing one costs more than signing."""


def signing_key(session: Session, keys: SealingKeys) -> ECKey:
    """The newest unretired key, made on first use so a fresh install signs without a step.

    Call it before writing anything else in the transaction: making the first key commits.
    """
    row = session.scalar(
        select(OidcSigningKey)
        .where(OidcSigningKey.retired_at.is_(None))
        .order_by(OidcSigningKey.created_at.desc())
        .limit(1)
    )
    if row is None:
        row = _new_key(session, keys)
        session.commit()
    key = _PRIVATE.get(row.kid)
    if key is None:
        key = _PRIVATE[row.kid] = ECKey.import_key(_unseal(keys, row.jwk["sealed"]))
    return key


def published_keys(session: Session) -> KeySet:
    since = utcnow() - RETIRED_KEY_PUBLISHED
    rows = session.scalars(
        select(OidcSigningKey).where(
            or_(OidcSigningKey.retired_at.is_(None), OidcSigningKey.retired_at > since)
        )
    ).all()
    for row in rows:
        if row.kid not in _PUBLIC:
            _PUBLIC[row.kid] = ECKey.import_key(row.jwk["public"])
    return KeySet([_PUBLIC[row.kid] for row in rows])


def jwks(session: Session) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in published_keys(session).keys]}


def sign(key: ECKey, claims: dict[str, Any], typ: str = "JWT") -> str:
    return jwt.encode({"alg": ALG, "kid": key.kid, "typ": typ}, claims, key)


def decode(session: Session, token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The header and claims of a token this provider signed with a published key, or None.

    Only the signature is checked here; callers check `iss`, `exp` and what the token is for.
    """
    try:
        decoded = jwt.decode(token, published_keys(session), algorithms=[ALG])
    except Exception:
        return None
    return decoded.header, decoded.claims


# --- subjects and claims --------------------------------------------------------------------


def subject_for(session: Session, user_id: int) -> str:
    row = session.get(OidcSubject, user_id)
    if row is None:
        row = OidcSubject(user_id=user_id, subject=secrets.token_urlsafe(24))
        session.add(row)
        session.flush()
    return row.subject


def claims_for(session: Session, user: User, scopes: set[str]) -> dict[str, Any]:
    """What each granted scope releases; nothing outside this list ever leaves Acceso."""
    claims: dict[str, Any] = {"sub": subject_for(session, user.id)}
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
    session: Session, user_id: int, *, acting_for: str | None = None
) -> list[OidcClient]:
    """Ends every token family of the account (only those signed in under the proxy grant
    `acting_for`, if given); returns the clients it had signed in to."""
    now = utcnow()
    query = select(OidcGrant).where(OidcGrant.user_id == user_id, OidcGrant.revoked_at.is_(None))
    if acting_for is not None:
        query = query.where(OidcGrant.acting_for == acting_for)
    grants = session.scalars(query).all()
    client_pks = {grant.client_pk for grant in grants}
    for grant in grants:
        grant.revoked_at = now
    if not client_pks:
        return []
    return list(session.scalars(select(OidcClient).where(OidcClient.id.in_(client_pks))).all())


def grant_is_live(session: Session, grant_id: str) -> OidcGrant | None:
    grant = session.get(OidcGrant, grant_id)
    if grant is None or grant.revoked_at is not None:
        return None
    return grant
