"""Liveness never touches a dependency; readiness says which dependency is down."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.fixtures.processes import free_port
from web import create_app


@pytest.fixture
def make_app():
    apps = []

    def make(settings):
        app = create_app({"SETTINGS": settings, "TESTING": True})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["acceso.temporal"].close()
        app.extensions["acceso.engine"].dispose()


@pytest.fixture
def live_settings(settings, dev_server):
    target = dev_server.client.service_client.config.target_host
    return replace(settings, temporal_address=target)


def test_healthz_answers_even_when_every_dependency_is_down(settings, make_app):
    down = replace(
        settings,
        database_url=f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/acceso",
        temporal_address=f"127.0.0.1:{free_port()}",
    )
    response = make_app(down).test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_ok_with_database_and_temporal_up(live_settings, make_app):
    response = make_app(live_settings).test_client().get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checks"] == {"database": "ok", "temporal": "ok"}


def test_readyz_fails_when_postgresql_is_unreachable(live_settings, make_app):
    down = replace(
        live_settings,
        database_url=f"postgresql+psycopg://acceso@127.0.0.1:{free_port()}/acceso",
    )
    response = make_app(down).test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["failed"] == ["database"]
    assert body["checks"]["temporal"] == "ok"


def test_readyz_fails_when_the_sqlite_directory_is_gone(live_settings, make_app, tmp_path):
    missing = tmp_path / "removed"
    app = make_app(replace(live_settings, database_url=f"sqlite:///{missing / 'acceso.db'}"))
    missing.rmdir()
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["failed"] == ["database"]


def test_readyz_fails_when_temporal_is_unreachable(settings, make_app):
    down = replace(settings, temporal_address=f"127.0.0.1:{free_port()}")
    response = make_app(down).test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["failed"] == ["temporal"]
    assert body["checks"]["database"] == "ok"
