"""The payload codec, its key rotation, and the remote-codec endpoint the Temporal UI calls."""

from __future__ import annotations

import base64
import json
import secrets
import stat
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidTag
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter
from temporalio.worker import Worker

from portal.codec import (
    ENCODING,
    KEY_ID_METADATA,
    CodecKeyError,
    EncryptionCodec,
    codec_keys_for,
    new_key_spec,
    parse_keys,
)
from portal.models import StaffUser, UserSession
from portal.passwords import hash_password
from portal.settings import Settings
from portal.tokens import token_hash
from temporal.client import data_converter
from temporal.search_attributes import OVERDUE, PORTAL, REFERENCE, STEP

UI_ORIGIN = "http://ui.acceso.test:8233"
CODEC_TOKEN = "codec-bearer-" + "x" * 24


def payload_of(value) -> Payload:
    return DataConverter.default.payload_converter.to_payloads([value])[0]


async def test_round_trip_encrypts_every_payload():
    codec = EncryptionCodec(parse_keys(new_key_spec("k1")))
    original = [payload_of({"email": "ana@example.org"}), payload_of("Ana Pérez")]
    encoded = await codec.encode(original)
    assert all(p.metadata["encoding"] == ENCODING for p in encoded)
    assert all(p.metadata[KEY_ID_METADATA] == b"k1" for p in encoded)
    assert b"ana@example.org" not in encoded[0].data
    assert await codec.decode(encoded) == original


async def test_rotation_old_key_still_decodes_and_new_payloads_use_new_key():
    old, new = new_key_spec("2025a"), new_key_spec("2026a")
    before = EncryptionCodec(parse_keys(old))
    sealed_before = await before.encode([payload_of("before rotation")])

    rotated = EncryptionCodec(parse_keys(f"{new},{old}"))
    sealed_after = await rotated.encode([payload_of("after rotation")])

    assert sealed_after[0].metadata[KEY_ID_METADATA] == b"2026a"
    assert await rotated.decode(sealed_before) == [payload_of("before rotation")]
    assert await rotated.decode(sealed_after) == [payload_of("after rotation")]
    with pytest.raises(CodecKeyError, match="unknown key id '2026a'"):
        await before.decode(sealed_after)


async def test_tampered_ciphertext_is_refused():
    codec = EncryptionCodec(parse_keys(new_key_spec("k1")))
    sealed = (await codec.encode([payload_of("x")]))[0]
    sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(InvalidTag):
        await codec.decode([sealed])


def test_malformed_keys_are_refused_with_a_clear_message():
    with pytest.raises(CodecKeyError, match="kid:base64key"):
        parse_keys("no-colon-here")
    with pytest.raises(CodecKeyError, match="16, 24 or 32 bytes"):
        parse_keys("k1:" + base64.b64encode(b"short").decode())
    with pytest.raises(CodecKeyError, match="twice"):
        spec = new_key_spec("k1")
        parse_keys(f"{spec},{spec}")


def test_production_without_keys_refuses_to_start(tmp_path):
    settings = Settings(data_dir=tmp_path, dev_mode=False, codec_keys="")
    with pytest.raises(CodecKeyError, match="ACCESO_CODEC_KEYS must be set"):
        data_converter(settings)


def test_dev_mode_makes_one_private_key_file_and_keeps_it(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", dev_mode=True, codec_keys="")
    first = codec_keys_for(settings)
    path = tmp_path / "var" / "codec.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert codec_keys_for(settings) == first
    assert len(first[0][1]) == 32


async def test_data_converter_round_trips_dataclasses(tmp_path):
    @dataclass
    class Applicant:
        email: str
        full_name: str

    converter = data_converter(Settings(data_dir=tmp_path, codec_keys=new_key_spec("k1")))
    value = Applicant(email="ana@example.org", full_name="Ana Pérez")
    encoded = await converter.encode([value])
    assert b"ana@example.org" not in encoded[0].SerializeToString()
    assert await converter.decode(encoded, [Applicant]) == [value]


# The remote codec endpoint.


@pytest.fixture
def codec_app(settings):
    from web import create_app

    app = create_app(
        {
            "SETTINGS": replace(
                settings, codec_bearer_token=CODEC_TOKEN, codec_cors_origins=UI_ORIGIN
            ),
            "TESTING": True,
        }
    )
    return app


def sign_in_staff(app, client, roles: str) -> None:
    """A staff session row plus the Flask-Login cookie that names it, as the staff login makes."""
    session_id = secrets.token_urlsafe(32)
    with app.extensions["acceso.sessions"]() as db:
        staff = StaffUser(
            username=f"staff-{uuid.uuid4().hex[:6]}",
            password_hash=hash_password("Irrelevant-1"),
            roles=roles,
        )
        db.add(staff)
        db.flush()
        from portal.models import utcnow

        db.add(
            UserSession(
                id=token_hash(session_id),
                staff_id=staff.id,
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        db.commit()
    with client.session_transaction() as session:
        session["_user_id"] = session_id
        session["_fresh"] = True


def encrypted_body(settings: Settings, value) -> tuple[dict, Payload]:
    from google.protobuf import json_format
    from temporalio.api.common.v1 import Payloads

    codec = EncryptionCodec(parse_keys(settings.codec_keys))
    sealed = codec.encrypt(payload_of(value))
    body = json.loads(json_format.MessageToJson(Payloads(payloads=[sealed])))
    return body, payload_of(value)


def test_decode_refuses_anonymous_callers(codec_app, settings):
    body, _ = encrypted_body(settings, "secret-ish")
    response = codec_app.test_client().post("/codec/decode", json=body)
    assert response.status_code == 401
    assert "secret-ish" not in response.get_data(as_text=True)


def test_decode_refuses_a_wrong_bearer_token(codec_app, settings):
    body, _ = encrypted_body(settings, "x")
    response = codec_app.test_client().post(
        "/codec/decode", json=body, headers={"Authorization": "Bearer not-the-token"}
    )
    assert response.status_code == 401


def test_decode_with_the_bearer_token_returns_plain_payloads(codec_app, settings):
    body, plain = encrypted_body(settings, {"email": "ana@example.org"})
    response = codec_app.test_client().post(
        "/codec/decode",
        json=body,
        headers={"Authorization": f"Bearer {CODEC_TOKEN}", "X-Namespace": "default"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    decoded = response.get_json()["payloads"][0]
    assert base64.b64decode(decoded["data"]) == plain.data
    assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"


def test_encode_then_decode_round_trips_over_http(codec_app, settings):
    client = codec_app.test_client()
    headers = {"Authorization": f"Bearer {CODEC_TOKEN}"}
    plain = payload_of("from the UI")
    from google.protobuf import json_format
    from temporalio.api.common.v1 import Payloads

    body = json.loads(json_format.MessageToJson(Payloads(payloads=[plain])))
    encoded = client.post("/codec/encode", json=body, headers=headers).get_json()
    assert base64.b64decode(encoded["payloads"][0]["metadata"]["encoding"]) == ENCODING
    decoded = client.post("/codec/decode", json=encoded, headers=headers).get_json()
    assert decoded == body


def test_operator_session_may_decode_but_other_staff_may_not(codec_app, settings):
    body, _ = encrypted_body(settings, "x")
    operator = codec_app.test_client()
    sign_in_staff(codec_app, operator, "operator")
    assert operator.post("/codec/decode", json=body).status_code == 200

    reviewer = codec_app.test_client()
    sign_in_staff(codec_app, reviewer, "reviewer")
    assert reviewer.post("/codec/decode", json=body).status_code == 403


def test_unknown_key_id_is_a_clear_error(codec_app, settings):
    other = EncryptionCodec(parse_keys(new_key_spec("retired")))
    from google.protobuf import json_format
    from temporalio.api.common.v1 import Payloads

    sealed = other.encrypt(payload_of("x"))
    body = json.loads(json_format.MessageToJson(Payloads(payloads=[sealed])))
    response = codec_app.test_client().post(
        "/codec/decode", json=body, headers={"Authorization": f"Bearer {CODEC_TOKEN}"}
    )
    assert response.status_code == 422
    assert "retired" in response.get_json()["error"]


def test_cors_preflight_allows_the_ui_origin_with_credentials(codec_app):
    response = codec_app.test_client().options(
        "/codec/decode",
        headers={
            "Origin": UI_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == UI_ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert {"x-namespace", "authorization", "content-type"} <= {
        h.strip() for h in allowed.split(",")
    }
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_cors_is_not_granted_to_other_origins(codec_app, settings):
    client = codec_app.test_client()
    preflight = client.options("/codec/decode", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in preflight.headers
    body, _ = encrypted_body(settings, "x")
    refused = client.post("/codec/decode", json=body, headers={"Origin": UI_ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == UI_ORIGIN


def test_codec_endpoint_needs_no_csrf_token(settings):
    from web import create_app

    app = create_app(
        {
            "SETTINGS": replace(settings, codec_bearer_token=CODEC_TOKEN),
            "WTF_CSRF_ENABLED": True,
        }
    )
    body, _ = encrypted_body(settings, "x")
    response = app.test_client().post(
        "/codec/decode", json=body, headers={"Authorization": f"Bearer {CODEC_TOKEN}"}
    )
    assert response.status_code == 200


# Search attributes on the time-skipping server (the unit-test server).


@workflow.defn(sandboxed=False)
class SearchAttributeProbe:
    @workflow.run
    async def run(self) -> list[str]:
        workflow.upsert_search_attributes(
            [PORTAL.value_set("patient"), REFERENCE.value_set("REF0000001")]
        )
        workflow.upsert_search_attributes([STEP.value_set("review")])
        try:
            await workflow.wait_condition(
                lambda: False, timeout=timedelta(hours=24), timeout_summary="approval SLA"
            )
        except TimeoutError:
            workflow.upsert_search_attributes([OVERDUE.value_set(True)])
        found = workflow.info().typed_search_attributes
        return [
            str(found.get(PORTAL)),
            str(found.get(REFERENCE)),
            str(found.get(STEP)),
            str(found.get(OVERDUE)),
        ]


async def test_time_skipping_server_accepts_acceso_search_attributes(time_skipping_env):
    queue = f"sa-{uuid.uuid4().hex[:8]}"
    async with Worker(time_skipping_env.client, task_queue=queue, workflows=[SearchAttributeProbe]):
        result = await time_skipping_env.client.execute_workflow(
            SearchAttributeProbe.run,
            id=f"sa-probe-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
    assert result == ["patient", "REF0000001", "review", "True"]
