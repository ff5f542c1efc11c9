"""Structured logs: one JSON object per line, tagged with the workflow, and never a secret.

Web and worker both call `configure_logging()`; operators grep one format everywhere, and a
redaction filter stands between every record and its handler.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

SECRET_NAMES = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "codec_keys",
    "answer",
)
REDACTED = "[redacted]"

_NAME = "|".join(SECRET_NAMES)
# `password=...`, `"token": "..."`, `Authorization: Bearer ...`: the name, then its value.
_PAIR = re.compile(
    rf"""(?ix)
    (?P<key>["']?[\w-]*(?:{_NAME})[\w-]*["']?)
    (?P<sep>\s*[:=]\s*)
    (?P<value>"[^"]*"|'[^']*'|(?:bearer|basic)\s+\S+|[^\s,;&)}}\]]+)
    """
)
# A path segment or query value that looks like a raw link token (secrets.token_urlsafe(32)).
_LINK_TOKEN = re.compile(r"(?<=/)[A-Za-z0-9_-]{40,}(?=$|[/?#\s\"'])")
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "workflow_id"}


def redact_text(text: str) -> str:
    """Blank the value of anything named like a secret, bearer tokens and link tokens in URLs."""
    text = _PAIR.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", text)
    text = _BEARER.sub(f"Bearer {REDACTED}", text)
    return _LINK_TOKEN.sub(REDACTED, text)


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SECRET_NAMES)


def _redact_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: REDACTED if _is_secret_name(str(k)) else _redact_value(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class RedactionFilter(logging.Filter):
    """Rewrites each record so no password, token or secret field survives, whoever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format must not lose the record or leak its args
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        for name, value in list(vars(record).items()):
            if name in _RESERVED:
                continue
            record.__dict__[name] = REDACTED if _is_secret_name(name) else _redact_value(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        record.exc_info = None
        return True


class WorkflowContextFilter(logging.Filter):
    """Adds workflow_id (and activity type) from the running activity, when there is one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "workflow_id", None):
            return True
        if activity.in_activity():
            info = activity.info()
            record.workflow_id = info.workflow_id
            record.activity_type = info.activity_type
            return True
        # workflow.logger puts its context in `temporal_workflow`; lift the id to the top level.
        context = getattr(record, "temporal_workflow", None) or getattr(
            record, "temporal_activity", None
        )
        if isinstance(context, dict) and context.get("workflow_id"):
            record.workflow_id = context["workflow_id"]
        return True


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, workflow_id when known, and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        workflow_id = getattr(record, "workflow_id", None)
        if workflow_id:
            entry["workflow_id"] = workflow_id
        for name, value in vars(record).items():
            if name not in _RESERVED and not name.startswith("_") and name not in entry:
                entry[name] = value
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


def install_filters(handler: logging.Handler) -> logging.Handler:
    """Context first, then redaction, so the redacted record is the one formatted."""
    handler.addFilter(WorkflowContextFilter())
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter())
    return handler


def configure_logging(level: str | int = "INFO", stream=None) -> logging.Handler:
    """Replaces the root logger's handlers with one JSON-lines handler; idempotent."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_acceso", False):
            root.removeHandler(existing)
    handler = install_filters(logging.StreamHandler(stream or sys.stderr))
    handler._acceso = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    return handler


try:
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # gunicorn is a production dependency; tolerate its absence elsewhere
    _GunicornLogger = None

if _GunicornLogger is not None:

    class GunicornLogger(_GunicornLogger):
        """gunicorn's logs and the app's as JSON, redacted: request lines carry link tokens.

        Selected with `--logger-class portal.logs.GunicornLogger` (the image sets it through
        GUNICORN_CMD_ARGS), which is how the web process configures its logging.
        """

        def setup(self, cfg) -> None:
            super().setup(cfg)
            configure_logging()
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    install_filters(handler)
