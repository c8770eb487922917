"""JSON request bodies, read at the edge with the limits Python's parser lacks.

Every `@bp.input(..., location="json")` body is read here (installed as webargs' "json" loader):
- not JSON at all (a form post) → 415 `unsupported_media_type`;
- not well-formed → 400 `invalid_json` naming the line and column;
- a lone UTF-16 surrogate ("\\ud800", which no database or log can encode) → 400 `invalid_unicode`;
- nested deeper than MAX_DEPTH (100,000 brackets overflow the parser's stack) → 400 `json_too_deep`;
- NaN or Infinity (not JSON, though Python reads them) → 400 `invalid_json`;
- anything but an object at the top → 422 `body_not_object` (not marshmallow's `_schema`).
An empty body is "no body": the schema's required fields say what is missing.
"""
import json
import re

from webargs import core

from app.web.errors import ApiError

JSON_BODY_LIMIT = 1024 * 1024  # JSON bodies are small; only uploads may be large
MAX_DEPTH = 32  # our deepest body is three levels (order → tasks → task)

_SURROGATE = re.compile(r"[\ud800-\udfff]")

# Python's JSON error messages → what is wrong, in Chinese.
_JSON_PROBLEMS = [
    ("Expecting property name enclosed in double quotes", "属性名必须用双引号括起来"),
    ("Expecting ',' delimiter", "缺少逗号"),
    ("Expecting ':' delimiter", "缺少冒号"),
    ("Expecting value", "缺少值或值无效"),
    ("Unterminated string", "字符串没有结束引号"),
    ("Invalid control character", "字符串中有未转义的控制字符"),
    ("Invalid \\uXXXX escape", "\\u 转义无效"),
    ("Invalid \\escape", "转义字符无效"),
    ("Extra data", "JSON 结束后还有多余内容"),
]


def install():
    """Make APIFlask's webargs parser read every JSON body with `load` (its loaders are per class,
    so doing it again for another app changes nothing)."""
    from apiflask.schema_adapters.marshmallow import parser

    parser.location_loader("json")(load)


def load(request, schema):
    raw = request.get_data(cache=True)
    if not raw.strip():
        return core.missing
    if not core.is_json(request.mimetype):
        raise ApiError(415, "unsupported_media_type",
                       f"请求体必须是 JSON（Content-Type: application/json），收到的是 {request.mimetype or '未声明的类型'}",
                       extra={"content_type": request.mimetype or None})
    data = parse(raw)
    if not isinstance(data, dict):
        raise ApiError(422, "body_not_object", f"请求体必须是 JSON 对象 {{…}}，收到的是{_kind(data)}")
    return data


def parse(raw):
    """bytes → the JSON value, or ApiError(400) saying what is wrong and where."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", f"请求体不是 UTF-8 编码的 JSON（第 {exc.start + 1} 个字节）",
                       extra={"position": exc.start})
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json",
                       f"请求体不是有效的 JSON：第 {exc.lineno} 行第 {exc.colno} 列{_problem(exc.msg)}",
                       extra={"line": exc.lineno, "column": exc.colno})
    except RecursionError:
        raise _too_deep()
    except ValueError as exc:  # a number of thousands of digits, NaN, Infinity
        raise ApiError(400, "invalid_json", f"请求体不是有效的 JSON：{exc}")
    _check(data)
    return data


def _refuse_constant(name):
    raise ValueError(f"{name} 不是 JSON 数值")


def _problem(message):
    for english, chinese in _JSON_PROBLEMS:
        if message.startswith(english):
            return f"：{chinese}"
    return f"：{message}"


def _too_deep():
    return ApiError(400, "json_too_deep", f"请求体嵌套过深（最多 {MAX_DEPTH} 层）")


def _check(data):
    """No lone surrogate in any string or key, no nesting beyond MAX_DEPTH (iterative: a deep
    value must not overflow this check either)."""
    pending = [(data, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            _refuse_surrogates(value)
        elif isinstance(value, (dict, list)):
            if depth >= MAX_DEPTH:
                raise _too_deep()
            if isinstance(value, dict):
                for key in value:
                    _refuse_surrogates(key)
                value = value.values()
            pending.extend((item, depth + 1) for item in value)


def _refuse_surrogates(text):
    found = _SURROGATE.search(text)
    if found:
        raise ApiError(400, "invalid_unicode",
                       f"请求体含有无效的 Unicode 字符（单独的代理项 \\u{ord(found.group()):04x}），请检查文本的编码")


def _kind(value):
    if isinstance(value, list):
        return "数组 […]"
    if isinstance(value, str):
        return "字符串"
    if value is None:
        return " null"
    if isinstance(value, bool):
        return "布尔值"
    return "数字"
