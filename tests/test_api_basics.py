"""The contract's conventions: error envelope, body limits, and an OpenAPI document built from the code."""
import re


def test_unknown_routes_answer_with_the_error_envelope(client):
    res = client.get("/mp/v1/no-such-thing")
    assert res.status_code == 404
    assert res.json == {"error": {"code": "not_found", "message": "请求的资源不存在"}}


def test_a_10_mb_json_body_is_refused_before_it_is_read(client):
    body = b'{"code": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    res = client.post("/mp/v1/auth/login", data=body, content_type="application/json")
    assert res.status_code == 413
    assert res.json["error"]["code"] == "payload_too_large"


def test_broken_json_is_a_clear_error(client):
    res = client.post("/mp/v1/auth/login", data=b"{not json", content_type="application/json")
    assert res.status_code == 400
    assert res.json["error"]["code"] == "invalid_json"


def test_openapi_describes_every_route_and_the_error_shape(app, client):
    spec = client.get("/openapi.json").json
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "dashboard.static", "openapi.spec", "openapi.docs") or rule.rule.startswith("/docs"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, f"{method} {path} missing from /openapi.json"
    login = spec["paths"]["/mp/v1/auth/login"]["post"]
    assert {"200", "400", "422", "503"} <= set(login["responses"])
    assert "ErrorEnvelope" in str(login["responses"]["400"])
    assert "MiniProgramToken" in spec["components"]["securitySchemes"]
