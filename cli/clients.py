"""`acceso client ...` and `acceso keys rotate`: registering the applications that sign in with
a portal, and rotating the keys their tokens are signed with."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.codec import CodecKeyError
from portal.config import load_portals
from portal.models import OidcClient
from portal.oidc import (
    ALG,
    ClientError,
    SigningAlg,
    add_client,
    ensure_signing_keys,
    remove_client,
    rotate_client_secret,
    rotate_keys,
    sealing_keys,
)
from portal.server_keys import ServerKeyError, client_secret_key
from portal.settings import load_settings

T = TypeVar("T")


def _sessions():
    from portal.db import make_engine, make_session_factory

    return make_session_factory(make_engine(load_settings().database_url))


def _commit(command: str, change: Callable[[Session], T]) -> tuple[bool, T | None]:
    """One change in its own transaction; a refused one is printed as `acceso <command>: <why>`
    and nothing is kept. Says whether it was made, and what the change returned."""
    with _sessions()() as session:
        try:
            made = change(session)
        except ClientError as error:
            print(f"acceso {command}: {error}", file=sys.stderr)
            return False, None
        session.commit()
    return True, made


def _client_secret_key(command: str) -> bytes | None:
    """The key client secrets are hashed with (ACCESO_SECRET_KEY's, as the web tier derives
    it), or None after saying what to set."""
    try:
        return client_secret_key(load_settings())
    except ServerKeyError as error:
        print(
            f"acceso client {command}: {error}: client secrets are hashed with a key derived "
            "from it (or from ACCESO_CLIENT_SECRET_KEY), the same one the web tier uses",
            file=sys.stderr,
        )
        return None


def cmd_client_add(args) -> int:
    portals = load_portals(load_settings().portals_file)
    if args.portal not in portals:
        print(
            f"acceso client add: unknown portal {args.portal!r}; "
            f"configured: {', '.join(sorted(portals))}",
            file=sys.stderr,
        )
        return 1
    key = None
    if not args.public:
        key = _client_secret_key("add")
        if key is None:
            return 1

    def add(session: Session) -> tuple[str, str | None]:
        made = add_client(
            session,
            args.name,
            portal=args.portal,
            redirect_uris=args.redirect_uri,
            secret_key=key,
            public=args.public,
            first_party=args.first_party,
            post_logout_redirect_uris=args.post_logout_redirect_uri or [],
            backchannel_logout_uri=args.backchannel_logout_uri,
            signing_alg=args.signing_alg,
            allowed_origins=args.allowed_origin or [],
            approved_scopes=" ".join(args.scope).split() if args.scope else None,
        )
        return made.client.client_id, made.secret

    ok, made = _commit("client add", add)
    if not ok:
        return 1
    client_id, secret = made
    print(f"client_id: {client_id}")
    if secret:
        print(f"client_secret: {secret}")
    return 0


def cmd_client_list(args) -> int:
    with _sessions()() as session:
        clients = session.scalars(select(OidcClient).order_by(OidcClient.name)).all()
        for client in clients:
            kind = "public" if client.public else "confidential"
            party = ", first-party" if client.first_party else ""
            print(
                f"{client.name}\t{client.portal}\t{client.client_id}\t{kind}{party}"
                f"\t{client.signing_alg}"
            )
            for uri in client.redirect_uris:
                print(f"  redirect: {uri}")
            for uri in client.post_logout_redirect_uris:
                print(f"  post-logout: {uri}")
            if client.backchannel_logout_uri:
                print(f"  back-channel logout: {client.backchannel_logout_uri}")
            for origin in client.allowed_origins:
                print(f"  allowed origin: {origin}")
            if client.approved_scopes is not None:
                print(f"  scopes: {' '.join(client.approved_scopes)}")
        if not clients:
            print("no clients registered")
    return 0


def cmd_client_remove(args) -> int:
    ok, _ = _commit("client remove", lambda session: remove_client(session, args.name))
    if not ok:
        return 1
    print(f"client {args.name} removed; its tokens no longer work")
    return 0


def cmd_client_rotate_secret(args) -> int:
    key = _client_secret_key("rotate-secret")
    if key is None:
        return 1
    ok, secret = _commit(
        "client rotate-secret", lambda session: rotate_client_secret(session, args.name, key)
    )
    if not ok:
        return 1
    print(f"client_secret: {secret}")
    return 0


def make_first_signing_keys(settings) -> None:
    """After migrating: a signing key per algorithm before any relying party asks for JWKS."""
    try:
        keys = sealing_keys(settings)
    except CodecKeyError:
        print(
            "no ACCESO_CODEC_KEYS here: the signing keys will be made when JWKS is first asked for",
            file=sys.stderr,
        )
        return
    from portal.db import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            for key in ensure_signing_keys(session, keys):
                print(f"signing key {key.kid} ({key.alg}) made")
    finally:
        engine.dispose()


def cmd_keys_rotate(args) -> int:
    try:
        keys = sealing_keys(load_settings())
    except CodecKeyError as error:
        print(f"acceso keys rotate: {error}", file=sys.stderr)
        return 1
    with _sessions()() as session:
        made = rotate_keys(session, keys)
        session.commit()
        for key in made:
            print(f"signing key {key.kid} ({key.alg}) in use")
        print("earlier keys stay published for an hour")
    return 0


def cmd_keys_reseal(args) -> int:
    from portal.codec import at_rest_keys
    from portal.two_factor import reseal_all

    try:
        keys = at_rest_keys(load_settings())
    except CodecKeyError as error:
        print(f"acceso keys reseal: {error}", file=sys.stderr)
        return 1
    with _sessions()() as session:
        try:
            moved = reseal_all(session, keys)
        except CodecKeyError as error:
            print(f"acceso keys reseal: {error}; nothing changed", file=sys.stderr)
            return 1
        session.commit()
    print(f"{moved} authenticator secrets sealed again with key {keys[0][0]}")
    return 0


def add_parsers(commands) -> None:
    client = commands.add_parser("client", help="register applications that sign in with Acceso")
    actions = client.add_subparsers(dest="client_command", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="register an OpenID Connect client on one portal",
        description="Prints client_id and, for a confidential client, client_secret (shown once).",
    )
    add.add_argument("name")
    add.add_argument("--portal", required=True)
    add.add_argument("--redirect-uri", action="append", required=True, metavar="URL")
    add.add_argument("--public", action="store_true", help="no secret; PKCE is required")
    add.add_argument("--post-logout-redirect-uri", action="append", metavar="URL")
    add.add_argument("--backchannel-logout-uri", metavar="URL")
    add.add_argument("--first-party", action="store_true", help="skip the consent screen")
    add.add_argument(
        "--signing-alg",
        choices=list(SigningAlg),
        default=ALG,
        help=f"what its ID tokens are signed with (default {ALG})",
    )
    add.add_argument(
        "--allowed-origin",
        action="append",
        metavar="ORIGIN",
        help="a public client's browser origin besides its redirect URIs' (CORS)",
    )
    add.add_argument(
        "--scope",
        action="append",
        metavar="SCOPES",
        help="the scopes it may ask for, e.g. 'openid fhirUser launch/patient patient/*.rs "
        "offline_access' for a SMART health app (default: the portal's OpenID Connect scopes)",
    )
    add.set_defaults(handler=cmd_client_add)
    actions.add_parser("list", help="list registered clients").set_defaults(handler=cmd_client_list)
    remove = actions.add_parser("remove", help="remove a client and its tokens")
    remove.add_argument("name")
    remove.set_defaults(handler=cmd_client_remove)
    rotate = actions.add_parser("rotate-secret", help="give a client a new secret")
    rotate.add_argument("name")
    rotate.set_defaults(handler=cmd_client_rotate_secret)

    keys = commands.add_parser("keys", help="manage token-signing keys")
    key_actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    key_actions.add_parser(
        "rotate",
        help="sign with a new key per algorithm; old ones stay published until their tokens expire",
    ).set_defaults(handler=cmd_keys_rotate)
    key_actions.add_parser(
        "reseal",
        help="seal every authenticator secret again with the first ACCESO_CODEC_KEYS key",
    ).set_defaults(handler=cmd_keys_reseal)
