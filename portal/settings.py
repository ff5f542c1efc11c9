"""Infrastructure settings, read once from the environment so every process agrees."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(_env("ACCESO_DATA_DIR", "var")))
    database_url: str = ""
    temporal_address: str = field(
        default_factory=lambda: _env("ACCESO_TEMPORAL_ADDRESS", "127.0.0.1:7233")
    )
    temporal_namespace: str = field(
        default_factory=lambda: _env("ACCESO_TEMPORAL_NAMESPACE", "default")
    )
    task_queue: str = field(default_factory=lambda: _env("ACCESO_TASK_QUEUE", "acceso"))
    temporal_ui_url: str = field(
        default_factory=lambda: _env("ACCESO_TEMPORAL_UI_URL", "http://127.0.0.1:8233")
    )
    smtp_host: str = field(default_factory=lambda: _env("ACCESO_SMTP_HOST", "127.0.0.1"))
    smtp_port: int = field(default_factory=lambda: int(_env("ACCESO_SMTP_PORT", "8025")))
    smtp_user: str = field(default_factory=lambda: _env("ACCESO_SMTP_USER", ""))
    smtp_password: str = field(default_factory=lambda: _env("ACCESO_SMTP_PASSWORD", ""))
    smtp_tls: str = field(default_factory=lambda: _env("ACCESO_SMTP_TLS", "none"))
    mail_from: str = field(
        default_factory=lambda: _env("ACCESO_MAIL_FROM", "Acceso <no-reply@acceso.localhost>")
    )
    secret_key: str = field(default_factory=lambda: _env("ACCESO_SECRET_KEY", ""))
    client_secret_key: str = field(default_factory=lambda: _env("ACCESO_CLIENT_SECRET_KEY", ""))
    """Optional: what client secrets' HMAC key is derived from instead of ACCESO_SECRET_KEY."""
    public_base_url: str = field(
        default_factory=lambda: _env("ACCESO_PUBLIC_BASE_URL", "http://127.0.0.1:5000")
    )
    portals_file: Path = field(
        default_factory=lambda: Path(
            _env("ACCESO_PORTALS_FILE", str(PROJECT_ROOT / "config" / "portals.toml"))
        )
    )
    dev_mode: bool = field(default_factory=lambda: _env_bool("ACCESO_DEV_MODE", False))
    worker_max_concurrent_activities: int = field(
        default_factory=lambda: int(_env("ACCESO_WORKER_MAX_ACTIVITIES", "50"))
    )
    worker_max_concurrent_workflow_tasks: int = field(
        default_factory=lambda: int(_env("ACCESO_WORKER_MAX_WORKFLOW_TASKS", "50"))
    )
    worker_max_cached_workflows: int = field(
        default_factory=lambda: int(_env("ACCESO_WORKER_MAX_CACHED_WORKFLOWS", "500"))
    )
    """Workflows a worker keeps in memory between their tasks; a waiting registration past this
    is evicted and replayed from its history on its next task, so memory stays bounded."""
    staff_idle_minutes: int = field(
        default_factory=lambda: int(_env("ACCESO_STAFF_IDLE_MINUTES", "15"))
    )
    staff_session_hours: int = field(
        default_factory=lambda: int(_env("ACCESO_STAFF_SESSION_HOURS", "12"))
    )
    codec_keys: str = field(default_factory=lambda: _env("ACCESO_CODEC_KEYS", ""))
    codec_bearer_token: str = field(default_factory=lambda: _env("ACCESO_CODEC_TOKEN", ""))
    codec_cors_origins: str = field(
        default_factory=lambda: _env("ACCESO_CODEC_CORS_ORIGINS", "http://127.0.0.1:8233")
    )
    allow_http: bool = field(default_factory=lambda: _env_bool("ACCESO_ALLOW_HTTP", False))
    app_check_private_urls: bool = field(
        default_factory=lambda: _env_bool(
            "ACCESO_APP_CHECK_PRIVATE_URLS", _env_bool("ACCESO_DEV_MODE", False)
        )
    )
    """Whether an app's privacy-policy check may fetch loopback and private addresses: only for
    a developer's own machine (on by default in dev mode), never in production."""
    metrics_token: str = field(default_factory=lambda: _env("ACCESO_METRICS_TOKEN", ""))
    worker_metrics_address: str = field(
        default_factory=lambda: _env("ACCESO_WORKER_METRICS_ADDRESS", "")
    )
    max_request_bytes: int = field(
        default_factory=lambda: int(_env("ACCESO_MAX_REQUEST_BYTES", str(64 * 1024)))
    )
    codec_max_request_bytes: int = field(
        default_factory=lambda: int(_env("ACCESO_CODEC_MAX_REQUEST_BYTES", str(4 * 1024 * 1024)))
    )
    trusted_proxies: str = field(default_factory=lambda: _env("ACCESO_TRUSTED_PROXIES", ""))
    """Comma-separated addresses or networks of the reverse proxies whose X-Forwarded-For counts."""
    rate_limit_sign_in: str = field(
        default_factory=lambda: _env("ACCESO_RATE_LIMIT_SIGN_IN", "20/minute;200/hour")
    )
    rate_limit_registration: str = field(
        default_factory=lambda: _env("ACCESO_RATE_LIMIT_REGISTRATION", "30/minute;300/hour")
    )
    rate_limit_recovery: str = field(
        default_factory=lambda: _env("ACCESO_RATE_LIMIT_RECOVERY", "10/minute;100/hour")
    )
    rate_limit_identity: str = field(
        default_factory=lambda: _env("ACCESO_RATE_LIMIT_IDENTITY", "10/15 minutes;100/hour")
    )
    rate_limit_token: str = field(
        default_factory=lambda: _env("ACCESO_RATE_LIMIT_TOKEN", "120/minute")
    )

    def __post_init__(self) -> None:
        if not self.database_url:
            default = f"sqlite:///{(self.data_dir / 'acceso.db').resolve()}"
            object.__setattr__(self, "database_url", _env("ACCESO_DATABASE_URL", default))

    @property
    def mail_dir(self) -> Path:
        """Where the dev SMTP capture drops messages for the dev inbox."""
        return self.data_dir / "mail"


def load_settings(**overrides) -> Settings:
    return Settings(**overrides)
