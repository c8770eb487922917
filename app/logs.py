"""Structured logs: one JSON object per line (or plain text for a terminal), with the request id.

No secret or personal data reaches a log at any level: SQL is logged without its parameters,
access logs without query strings (signed /files links carry their signature there), and the
HTTP clients whose DEBUG lines carry credentials in URLs or headers stay at WARNING.
"""
import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime

from flask import g, has_request_context, request

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}
# Colour codes werkzeug's dev server puts around request lines; a JSON line is not a terminal.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# "?expires=…&sig=…", "?access_token=…": a query string up to the next space or quote.
_QUERY = re.compile(r"\?[^\s\"]*")
# Access logs: werkzeug's dev server (`flask serve`) and gunicorn's (when --access-logfile is set).
ACCESS_LOGGERS = ("werkzeug", "gunicorn.access")
# DEBUG lines of these carry secrets: urllib3 the WeChat URLs (access_token, secret, js_code),
# oss2 the request headers and strings to sign.
QUIET_LOGGERS = ("urllib3", "oss2")


class DropQueryStrings(logging.Filter):
    """Access log lines keep method, path and status; query strings (and the referer's) go."""

    def filter(self, record):
        record.msg = _QUERY.sub("", record.getMessage())
        record.args = ()
        return True


class SqlWithoutParameters(logging.Filter):
    """peewee logs (sql, params) at DEBUG; the parameters are the data — invite codes, password
    and key hashes, openids, phone numbers — so only the statement and their count are kept."""

    def filter(self, record):
        if isinstance(record.msg, tuple) and len(record.msg) == 2:
            sql, params = record.msg
            record.msg = f"{sql} -- {len(params or ())} parameter(s) not logged"
            record.args = ()
        return True


def _install(logger_name, filter_class):
    """Once per logger: create_app runs several times in one process (tests, commands)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, filter_class) for f in logger.filters):
        logger.addFilter(filter_class())


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _ANSI.sub("", record.getMessage()),
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
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Logger filters (not handler filters) so every handler sees the cleaned record, gunicorn's too.
    for name in ACCESS_LOGGERS:
        _install(name, DropQueryStrings)
    _install("peewee", SqlWithoutParameters)

    @app.before_request
    def assign_request_id():
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming[:64] if incoming.isalnum() else uuid.uuid4().hex

    @app.after_request
    def echo_request_id(response):
        response.headers["X-Request-Id"] = getattr(g, "request_id", "")
        return response
