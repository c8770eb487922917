"""One error shape for every response: {"error": {"code", "message", "field"?}}.

Services raise domain errors (app/domain/errors.py), which say what kind of failure it is;
`DOMAIN_STATUS` is where a kind becomes an HTTP status. `ApiError` is for what only the web
edge knows (authentication, WeChat login answers). The handlers below turn both, validation
errors, HTTP errors and crashes into the envelope. Codes are stable snake_case for programs;
messages are Simplified Chinese for people.
"""
import logging
import re

from apiflask import Schema
from apiflask.fields import Dict, Nested, String
from flask import request
from marshmallow import INCLUDE
from werkzeug.exceptions import HTTPException

from app.domain.errors import DomainError

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status, code, message, field=None, extra=None):
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra or {}

    def body(self):
        err = {"code": self.code, "message": self.message}
        if self.field:
            err["field"] = self.field
        err.update(self.extra)
        return {"error": err}

    @classmethod
    def from_domain(cls, err):
        return cls(DOMAIN_STATUS[err.kind], err.code, err.message, err.field, err.extra)


DOMAIN_STATUS = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "invalid": 422,
    "rate_limited": 429,
    "unavailable": 503,
}


class ErrorBody(Schema):
    """Errors may carry more than these: `fields`, `differs`, `errors`, `line`/`column` …"""

    class Meta:
        unknown = INCLUDE  # in OpenAPI: additionalProperties allowed

    code = String(required=True, metadata={"description": "stable machine code, snake_case"})
    message = String(required=True, metadata={"description": "简体中文说明"})
    field = String(metadata={"description": "the request field at fault, for validation errors"})
    fields = Dict(metadata={"description": "every invalid field and its problem"})


class ErrorEnvelope(Schema):
    error = Nested(ErrorBody, required=True)


# Status → (code, message) for errors raised by Flask/Werkzeug themselves.
_HTTP_CODES = {
    400: ("bad_request", "请求格式不正确"),
    401: ("unauthorized", "请先登录"),
    403: ("forbidden", "没有权限"),
    404: ("not_found", "请求的资源不存在"),
    405: ("method_not_allowed", "不支持该请求方法"),
    413: ("payload_too_large", "请求内容过大"),
    415: ("unsupported_media_type", "不支持的内容类型"),
    429: ("rate_limited", "请求过于频繁，请稍后再试"),
}

# marshmallow's English messages → short Chinese phrases.
_FIELD_MESSAGES = [
    (r"Missing data for required field", "为必填项"),
    (r"Field may not be null", "不能为空"),
    (r"Not a valid integer", "必须是整数"),
    (r"Not a valid number", "必须是数字"),
    (r"Not a valid string", "必须是文本"),
    (r"Not a valid boolean", "必须是布尔值"),
    (r"Not a valid date\b", "必须是 YYYY-MM-DD 格式的日期"),
    (r"Not a valid datetime", "必须是 ISO 8601 时间"),
    (r"Not a valid UUID", "必须是 UUID"),
    (r"Not a valid list", "必须是列表"),
    (r"Not a valid mapping", "必须是对象"),
    (r"Unknown field", "是未知字段"),
    # Enums list what is allowed, ranges and lengths name their bounds (marshmallow's wording).
    (r"Must be one of: (.*)\.$", "必须是以下之一：{0}"),
    (r"Length must be between (\S+) and (\S+)\.", "长度必须在 {0} 到 {1} 之间"),
    (r"Shorter than minimum length (\S+)\.", "长度不能少于 {0}"),
    (r"Longer than maximum length (\S+)\.", "长度不能超过 {0}"),
    (r"Length must be (\S+)\.", "长度必须是 {0}"),
    (r"Must be greater than or equal to (\S+) and less than or equal to (\S+)\.", "必须在 {0} 到 {1} 之间"),
    (r"Must be greater than or equal to (\S+)\.", "不能小于 {0}"),
    (r"Must be less than or equal to (\S+)\.", "不能大于 {0}"),
    (r"Must be greater than (\S+)\.", "必须大于 {0}"),
    (r"Must be less than (\S+)\.", "必须小于 {0}"),
    (r"Number too large", "数值过大"),
    (r"Invalid input type", "类型不正确"),
]
_CJK = re.compile(r"[\u4e00-\u9fff]")


def _first_message(messages):
    while isinstance(messages, (list, dict)):
        if isinstance(messages, dict):
            messages = next(iter(messages.values()), "")
        else:
            messages = messages[0] if messages else ""
    return str(messages)


def _chinese(message):
    if _CJK.search(message):
        return message  # our own validators already speak Chinese
    for pattern, zh in _FIELD_MESSAGES:
        found = re.search(pattern, message)
        if found:
            return zh.format(*found.groups())
    return "格式不正确"


def validation_error(detail):
    """APIFlask's {location: {field: [messages]}} → our envelope naming the first bad field."""
    fields = {}
    for location_fields in (detail or {}).values():
        if isinstance(location_fields, dict):
            for name, messages in location_fields.items():
                fields[name] = _chinese(_first_message(messages))
    if not fields:
        return ApiError(422, "validation_error", "请求参数不正确")
    name, problem = next(iter(fields.items()))
    if name == "_schema":  # a rule over several fields: the message says which, marshmallow's name would not
        others = {k: v for k, v in fields.items() if k != "_schema"}
        return ApiError(422, "validation_error", problem, extra={"fields": others} if others else None)
    return ApiError(422, "validation_error", f"参数 {name} {problem}", field=name, extra={"fields": fields})


def _http_error(status):
    code, message = _HTTP_CODES.get(status, ("http_error", "请求失败"))
    if status == 413 and request and request.max_content_length:
        limit = request.max_content_length
        size = f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
        return ApiError(413, code, f"{message}：此接口的请求体最多 {size}", extra={"limit_bytes": limit})
    return ApiError(status, code, message)


def _retry_after(err):
    """An error that says how long to wait (`retry_after` seconds, e.g. 429 login_locked or
    export_busy) says it in the Retry-After header too, where HTTP clients look for it."""
    seconds = err.extra.get("retry_after")
    return {"Retry-After": str(int(seconds))} if seconds is not None else {}


def register(app):
    @app.errorhandler(ApiError)
    def handle_api_error(err):
        return err.body(), err.status, _retry_after(err)

    @app.errorhandler(DomainError)
    def handle_domain_error(err):
        api_err = ApiError.from_domain(err)
        return api_err.body(), api_err.status, _retry_after(api_err)

    @app.error_processor
    def handle_http_error(err):
        # APIFlask routes validation errors, abort() and Werkzeug HTTP errors here.
        if err.status_code == app.config["VALIDATION_ERROR_STATUS_CODE"] and err.detail:
            api_err = validation_error(err.detail)
        else:
            api_err = _http_error(err.status_code)
        return api_err.body(), api_err.status, err.headers

    @app.errorhandler(Exception)
    def handle_crash(err):
        if isinstance(err, HTTPException):
            return _http_error(err.code).body(), err.code
        log.exception("unhandled error")
        return ApiError(500, "internal_error", "服务器内部错误，请稍后再试").body(), 500
