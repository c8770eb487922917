"""What APIFlask's generated /openapi.json leaves out, completed once for every route:

- the staff session cookie as a security scheme (apiKey in cookie), beside the ERP key; routes
  ERP keys may not call (`staff_role` without `key_scope`) accept the cookie only;
- path ids as the integers the routes take (1 … 2^63 − 1);
- request bodies marked required unless an empty one is valid;
- the answers every body route can give before its view runs: 400 (not JSON), 413 (too large),
  415 (not application/json), and 403 for routes limited to some roles.
"""
import re

from marshmallow import ValidationError

from app.web.fields import INT64_MAX
from app.web.jsonbody import JSON_BODY_LIMIT

ERP_KEY = "ErpApiKey"
STAFF_SESSION = "StaffSession"

_ERROR_REF = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}

BODY_ANSWERS = {
    "400": "请求体不是有效的 JSON：invalid_json（指明行列）、invalid_unicode（单独的代理项）或 json_too_deep（嵌套过深）",
    "413": f"请求体超过 {JSON_BODY_LIMIT // (1024 * 1024)} MB（payload_too_large）",
    "415": "请求体不是 JSON（unsupported_media_type：需要 Content-Type: application/json）",
}


def register(app):
    @app.spec_processor
    def complete(spec):
        spec["components"]["securitySchemes"][STAFF_SESSION] = {
            "type": "apiKey", "in": "cookie", "name": app.config["SESSION_COOKIE_NAME"],
            "description": "管理端会话 Cookie（HttpOnly），由 POST /api/v1/auth/login 设置"}
        for path, method, view in _operations(app):
            operation = spec["paths"].get(path, {}).get(method)
            if operation is not None:
                _complete(operation, view, app)
        return spec


def _operations(app):
    """(OpenAPI path, method, view function) of every route, as APIFlask names the paths."""
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        path = re.sub(r"<([^<:]+:)?", "{", rule.rule).replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            yield path, method.lower(), view


def _complete(operation, view, app):
    responses = operation["responses"]
    security = operation.get("security")
    if security == [{ERP_KEY: []}]:
        operation["security"] = [{STAFF_SESSION: []}] if getattr(view, "staff_only", False) else \
            [{ERP_KEY: []}, {STAFF_SESSION: []}]
    if getattr(view, "roles_limited", False):
        _answer(responses, "403", "当前角色无权执行此操作（forbidden、api_key_scope、not_bound、wrong_role）")
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
            parameter["schema"].update(minimum=1, maximum=INT64_MAX)
    body = operation.get("requestBody")
    if body is None:
        return
    body["required"] = not _empty_body_valid(view)
    if "application/json" in body["content"]:
        for status, description in BODY_ANSWERS.items():
            _answer(responses, status, description)
    else:
        limit = app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)
        _answer(responses, "413", f"请求超过 {limit} MB（payload_too_large）")


def _empty_body_valid(view):
    schema = getattr(view, "_spec", {}).get("body")
    try:
        schema.load({})
    except (ValidationError, AttributeError):
        return False
    return True


def _answer(responses, status, description):
    responses.setdefault(status, {"description": description, "content": _ERROR_REF})
