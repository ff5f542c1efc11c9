"""Posting a signed logout token to a client's back-channel URI; the token exists only here."""

from __future__ import annotations

import secrets
import time

import requests
from sqlalchemy.orm import sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from portal.audit import add_event
from portal.models import OidcClient
from portal.oidc import (
    BACKCHANNEL_EVENT,
    LOGOUT_TOKEN_SECONDS,
    issuer_for,
    sealing_keys,
    sign,
    signing_key,
    subject_for,
)
from portal.settings import Settings
from processes.logout_delivery.vocabulary import DeliveryOutcome, LogoutAnswered, LogoutAttempt

POST_TIMEOUT_SECONDS = 10


class LogoutDeliveryActivities:
    def __init__(self, session_factory: sessionmaker, settings: Settings):
        self.session_factory = session_factory
        self.base_url = settings.public_base_url
        self.sealing_keys = sealing_keys(settings)

    @activity.defn
    def post_logout_token(self, attempt: LogoutAttempt) -> LogoutAnswered:
        """One POST; a refusal or an outage raises, so the workflow's retry policy tries again."""
        with self.session_factory() as session:
            client = session.get(OidcClient, attempt.client_pk)
            if client is None or not client.backchannel_logout_uri:
                return LogoutAnswered(outcome=DeliveryOutcome.CLIENT_GONE)
            now = int(time.time())
            key = signing_key(session, self.sealing_keys, client.signing_alg)
            claims = {
                "iss": issuer_for(self.base_url, attempt.portal),
                "aud": client.client_id,
                "iat": now,
                "exp": now + LOGOUT_TOKEN_SECONDS,
                "jti": secrets.token_urlsafe(16),
                "sub": subject_for(session, attempt.user_id),
                "events": {BACKCHANNEL_EVENT: {}},
            }
            if attempt.sid:
                claims["sid"] = attempt.sid
            token = sign(key, claims, typ="logout+jwt")
            session.commit()
            uri = client.backchannel_logout_uri
            client_name = client.name
        try:
            response = requests.post(
                uri,
                data={"logout_token": token},
                timeout=POST_TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            raise ApplicationError(f"{client_name}: {type(error).__name__}") from None
        if response.status_code not in (200, 204):
            raise ApplicationError(f"{client_name}: HTTP {response.status_code}")
        with self.session_factory() as session:
            add_event(
                session,
                actor="system",
                action="oidc.backchannel_logout",
                portal=attempt.portal,
                workflow_id=activity.info().workflow_id,
                user_id=attempt.user_id,
                client=client_name,
            )
            session.commit()
        return LogoutAnswered(outcome=DeliveryOutcome.DELIVERED, status=response.status_code)
