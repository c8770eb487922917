"""/openapi.json (issue 7, item 8): a valid OpenAPI 3.1 document that client generators can use,
and true to the app — schemathesis fuzzes every operation, as each kind of caller and as
nobody, and no answer is a server error or an undocumented status."""
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from app.services.auth import create_api_key
from tests import factories
from tests.helpers import wechat_settings

MAX_EXAMPLES = {"sqlite": 25, "mysql": 10}  # per operation and caller: the whole run stays well under two minutes


@pytest.fixture
def app_settings(wechat_fake):
    """WeChat configured (the loopback fake): mini-program login answers instead of 503."""
    return wechat_settings(wechat_fake)


def _schema_values(node, key):
    """Every value of `key` anywhere in the document."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _schema_values(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _schema_values(item, key)


def test_the_document_is_valid_openapi_3_1(client):
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # raises on the first violation of the OpenAPI 3.1 meta-schema
    for key in ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"):
        for value in _schema_values(spec, key):
            assert isinstance(value, (int, float)) and not isinstance(value, bool), (key, value)


def test_bodies_errors_and_the_staff_cookie_are_documented(client):
    spec = client.get("/openapi.json").json
    schemes = spec["components"]["securitySchemes"]
    assert schemes["StaffSession"] == {**schemes["StaffSession"], "type": "apiKey", "in": "cookie", "name": "session"}
    paths = spec["paths"]

    create = paths["/api/v1/orders"]["post"]
    assert create["requestBody"]["required"] is True
    assert {"ErpApiKey": []} in create["security"] and {"StaffSession": []} in create["security"]
    assert {"400", "401", "403", "404", "409", "413", "415", "422"} <= set(create["responses"])
    assert "invalid_json" in create["responses"]["400"]["description"]
    # ERP keys cannot deactivate suppliers: only the staff cookie is offered.
    assert paths["/api/v1/suppliers/{party_id}/deactivate"]["post"]["security"] == [{"StaffSession": []}]
    # Responding to an alert is a person's: the staff cookie only; reading it, an ERP key too.
    assert paths["/api/v1/alerts/{alert_id}/resolve"]["post"]["security"] == [{"StaffSession": []}]
    assert {"ErpApiKey": []} in paths["/api/v1/alerts"]["get"]["security"]
    # An urge's body may be left out (its message is optional).
    assert paths["/api/v1/tasks/{task_id}/urges"]["post"]["requestBody"]["required"] is False
    ids = paths["/mp/v1/tasks/{task_id}"]["get"]["parameters"][0]["schema"]
    assert ids == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    # Errors carry more than code and message (fields, differs, line, column …).
    assert spec["components"]["schemas"]["ErrorBody"].get("additionalProperties") is not False
    for path, operations in paths.items():
        for method, operation in operations.items():
            body = operation.get("requestBody")
            if body and "application/json" in body["content"]:
                assert {"400", "413", "415", "422"} <= set(operation["responses"]), f"{method} {path}"


# --- schemathesis over every operation ------------------------------------------------------------

DESTRUCTIVE = ("logout", "deactivate", "unbind", "revoke-tokens")  # run last: they end the callers' access


def _callers(dbconn, client, auth):
    """How each security scheme is satisfied: a bound supplier and customer, the manager's
    session cookie, an ERP key with every scope; and nobody, for every operation."""
    sup, cust = factories.supplier(), factories.customer()
    factories.order(cust, [sup])
    auth.login("manager")
    _, key = create_api_key("fuzz-erp", ("orders", "invites", "alerts"))
    session = client.get_cookie("session").value
    return {
        "MiniProgramToken": [{"headers": factories.bearer(factories.wechat_user(sup))},
                             {"headers": factories.bearer(factories.wechat_user(cust))}],
        "ErpApiKey": [{"headers": {"Authorization": f"Bearer {key}"}}],
        "StaffSession": [{"cookies": {"session": session}}],
    }


def _as(case, caller):
    """The case as sent by `caller` (or by nobody): generated credentials replaced by ours."""
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in ("authorization", "cookie")}
    case.cookies = {}
    case.headers.update(caller.get("headers", {}))
    case.cookies.update(caller.get("cookies", {}))
    return case


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _fuzz(operation, callers, max_examples, stats):
    """Positive and negative cases of one operation, each sent as nobody and as every caller its
    security accepts; invalid data must be refused (negative_data_rejection)."""
    schemes = [name for requirement in operation.definition.raw.get("security", []) for name in requirement]
    who = [{}] + [caller for name in schemes for caller in callers[name]]

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy() | operation.as_strategy(GenerationMode.NEGATIVE))
    def fuzz(case):
        negative = case.meta is not None and case.meta.generation.mode == GenerationMode.NEGATIVE
        stats["negative"] += negative
        for caller in who:
            _as(case, caller).call_and_validate(checks=CHECKS + [negative_data_rejection] * negative)
            stats["calls"] += 1

    fuzz()


def test_fuzzing_every_operation_finds_no_server_error(app, client, auth, dbconn, backend):
    callers = _callers(dbconn, client, auth)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = sorted((result.ok() for result in schema.get_all_operations()),
                        key=lambda op: (any(word in op.path for word in DESTRUCTIVE), op.path, op.method))
    assert len(operations) > 30
    for path, scheme in (("/api/v1/me", "StaffSession"), ("/api/v1/me", "ErpApiKey"), ("/mp/v1/me", "MiniProgramToken")):
        for caller in callers[scheme]:  # the callers really are logged in
            assert _as(schema[path]["GET"].Case(), caller).call().status_code == 200, scheme
    started, stats = time.monotonic(), {"calls": 0, "negative": 0}
    for operation in operations:
        try:
            _fuzz(operation, callers, MAX_EXAMPLES[backend["name"]], stats)
        except Exception as exc:
            pytest.fail(f"{operation.method.upper()} {operation.path}: {exc}")
    assert stats["calls"] > 500 and stats["negative"] > 50  # invalid data too: all of it refused with a 4xx
    assert time.monotonic() - started < 120
