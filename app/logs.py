"""Structured logs: one JSON object per line (or plain text for a terminal), with the request id."""
import json
import logging
import sys
import uuid
from datetime import UTC, datetime

from flask import g, has_request_context, request

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if has_request_context():
            entry["request_id"] = getattr(g, "request_id", None)
            entry["path"] = request.path
        # Anything passed as logging extra={...} becomes a field.
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(app):
    handler = logging.StreamHandler(sys.stderr)
    if app.config["LOG_FORMAT"] == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_wx_handler", False):
            root.removeHandler(old)
    handler._wx_handler = True
    root.addHandler(handler)
    root.setLevel(app.config["LOG_LEVEL"])
    # Request URLs of WeChat calls carry secrets and tokens in the query; urllib3 logs them at DEBUG.
    logging.getLogger("urllib3").setLevel(logging.WARNING)

    @app.before_request
    def assign_request_id():
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming[:64] if incoming.isalnum() else uuid.uuid4().hex

    @app.after_request
    def echo_request_id(response):
        response.headers["X-Request-Id"] = getattr(g, "request_id", "")
        return response
