"""The WeChat/WeCom fake itself, driven the way production drives the real platform:
wechatpy 1.8.18 clients whose HTTP session is redirected to the fake (reference §7.1 A),
and plain `requests` for the group robot. No MySQL or Redis is involved."""
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from wechatpy import WeChatClient
from wechatpy.enterprise import WeChatClient as WorkClient
from wechatpy.exceptions import APILimitedException, WeChatClientException

from tests.fakes.http import LoopbackServer
from tests.fakes.wechat import FakeWeChat

OPENID = "o_fake_openid_1"
NODE_DONE = {
    "thing2": {"value": "外协订单A123"},
    "character_string1": {"value": "PO20240101001"},
    "phrase3": {"value": "已完成"},
    "time4": {"value": "2026-11-22 10:00"},
}


class LoopbackSession(requests.Session):
    """Sends wechatpy's hard-coded hosts to the fake and adds a default timeout."""

    def __init__(self, base, default_timeout=5):
        super().__init__()
        self.base = base.rstrip("/")
        self.default_timeout = default_timeout

    def request(self, method, url, *args, **kwargs):
        for real in ("https://api.weixin.qq.com", "https://qyapi.weixin.qq.com"):
            if url.startswith(real):
                url = self.base + url[len(real):]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)


class StepClock:
    """A clock the test moves by hand, so minute windows and spacing rules take no real time."""

    def __init__(self, now=20000 * 86400 + 3600.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def clock():
    return StepClock()


@pytest.fixture(scope="module")
def server():
    """One server per module, reset for each test: stopping a server costs a poll interval."""
    with FakeWeChat() as started:
        yield started


@pytest.fixture
def fake(server, clock):
    server.reset()
    server.clock = clock
    return server


@pytest.fixture
def mp(fake):
    client = WeChatClient(fake.appid, fake.secret, auto_retry=False)
    client._http = LoopbackSession(fake.url)
    return client


@pytest.fixture
def work(fake):
    client = WorkClient(fake.corp_id, fake.corp_secret, auto_retry=False)
    client._http = LoopbackSession(fake.url)
    return client


def raw_post(fake, path, body, **params):
    """POST a JSON body the way wechatpy does: raw UTF-8 bytes, no Content-Type header."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return requests.post(fake.url + path, params=params, data=data, timeout=5).json()


def mp_token(fake):
    return requests.get(
        fake.url + "/cgi-bin/token",
        params={"grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret},
        timeout=5,
    ).json()["access_token"]


def stable_token(fake, force_refresh=False):
    body = {"grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret}
    return raw_post(fake, "/cgi-bin/stable_token", {**body, "force_refresh": force_refresh})


def subscribe(fake, token, data=None, **extra):
    body = {"touser": OPENID, "template_id": "TPL_NODE_DONE", "data": data or NODE_DONE, **extra}
    return raw_post(fake, "/cgi-bin/message/subscribe/send", body, access_token=token)


def robot(fake, body, key="fake-robot-key"):
    return requests.post(fake.url + "/cgi-bin/webhook/send", params={"key": key}, json=body, timeout=5).json()


# --- loopback server ---


def test_loopback_server_serves_until_stopped():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong"]

    with LoopbackServer(app) as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert requests.get(server.url, timeout=5).text == "pong"
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url, timeout=5)


# --- tokens and login ---


def test_code_to_session_fetches_a_token_first_then_maps_the_code(fake, mp):
    fake.add_login_code("code-1", OPENID, unionid="union-1")

    session = mp.wxa.code_to_session("code-1")

    assert session == {"openid": OPENID, "session_key": "c2Vzc2lvbmtleQ==", "unionid": "union-1"}
    assert fake.token_requests == [{"path": "/cgi-bin/token", "force_refresh": False}]


def test_a_login_code_works_once(fake, mp):
    fake.add_login_code("code-1", OPENID)
    mp.wxa.code_to_session("code-1")

    with pytest.raises(WeChatClientException) as caught:
        mp.wxa.code_to_session("code-1")
    assert caught.value.errcode == 40029


def test_jscode2session_checks_app_credentials(fake):
    fake.add_login_code("code-1", OPENID)
    params = {"appid": fake.appid, "secret": "wrong", "js_code": "code-1", "grant_type": "authorization_code"}
    assert requests.get(fake.url + "/sns/jscode2session", params=params, timeout=5).json()["errcode"] == 40125
    params.update(appid="wx_other", secret=fake.secret)
    assert requests.get(fake.url + "/sns/jscode2session", params=params, timeout=5).json()["errcode"] == 40013


@pytest.mark.parametrize(
    "params, errcode",
    [
        ({"appid": "wx_other"}, 40013),
        ({"secret": "wrong"}, 40001),
        ({"grant_type": "password"}, 40002),
    ],
)
def test_token_rejects_bad_credentials(fake, params, errcode):
    query = {"grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret, **params}
    assert requests.get(fake.url + "/cgi-bin/token", params=query, timeout=5).json()["errcode"] == errcode


def test_an_older_token_stays_valid_for_five_minutes(fake, clock):
    fake.grant_quota(OPENID, "TPL_NODE_DONE", 3)
    old = mp_token(fake)
    new = mp_token(fake)

    assert old != new
    assert subscribe(fake, old)["errcode"] == 0
    clock.advance(301)
    assert subscribe(fake, old)["errcode"] == 42001
    assert subscribe(fake, new)["errcode"] == 0


def test_stable_token_is_shared_until_force_refreshed(fake, clock):
    first = stable_token(fake)
    assert stable_token(fake)["access_token"] == first["access_token"]

    forced = stable_token(fake, force_refresh=True)
    assert forced["access_token"] != first["access_token"]
    assert stable_token(fake, force_refresh=True)["errcode"] == 45009

    clock.advance(31)
    assert "access_token" in stable_token(fake, force_refresh=True)
    assert [r["force_refresh"] for r in fake.token_requests] == [False, False, True, True, True]


def test_stable_token_force_refresh_is_limited_per_day(fake, clock):
    for _ in range(20):
        assert "access_token" in stable_token(fake, force_refresh=True)
        clock.advance(31)
    assert stable_token(fake, force_refresh=True)["errmsg"] == "reach max api daily quota limit"
    assert "access_token" in stable_token(fake)


def test_stable_token_is_accepted_by_mini_program_apis(fake):
    fake.grant_quota(OPENID, "TPL_NODE_DONE")
    assert subscribe(fake, stable_token(fake)["access_token"])["errcode"] == 0


def test_expire_tokens_makes_business_calls_answer_42001(fake, mp):
    fake.grant_quota(OPENID, "TPL_NODE_DONE")
    token = mp_token(fake)
    fake.expire_tokens()

    assert subscribe(fake, token)["errcode"] == 42001
    assert fake.quota(OPENID, "TPL_NODE_DONE") == 1


@pytest.mark.parametrize("token, errcode", [("", 41001), ("NOT_A_TOKEN", 40001)])
def test_missing_or_unknown_token(fake, token, errcode):
    assert subscribe(fake, token)["errcode"] == errcode


def test_tokens_only_work_for_their_own_api_family(fake, work):
    fake.grant_quota(OPENID, "TPL_NODE_DONE")
    assert subscribe(fake, work.access_token)["errcode"] == 40014
    body = {"touser": "zhangsan", "agentid": fake.agent_id, "msgtype": "text", "text": {"content": "hi"}}
    assert raw_post(fake, "/cgi-bin/message/send", body, access_token=mp_token(fake))["errcode"] == 40014


# --- subscribe messages ---


def test_subscribe_send_consumes_one_acceptance(fake, mp):
    fake.grant_quota(OPENID, "TPL_NODE_DONE")

    result = mp.wxa.send_subscribe_message(OPENID, "TPL_NODE_DONE", NODE_DONE, page="pages/order/detail?id=42")

    assert result["errcode"] == 0 and isinstance(result["msgid"], int)
    assert fake.quota(OPENID, "TPL_NODE_DONE") == 0
    assert fake.subscribe_messages[0]["page"] == "pages/order/detail?id=42"
    with pytest.raises(WeChatClientException) as caught:
        mp.wxa.send_subscribe_message(OPENID, "TPL_NODE_DONE", NODE_DONE)
    assert caught.value.errcode == 43101
    assert [r["errcode"] for r in fake.business_requests] == [0, 43101]


def test_subscribe_send_accepts_miniprogram_state_through_client_post(fake, mp):
    fake.grant_quota(OPENID, "TPL_DELAY")
    data = {"thing2": {"value": "面料延期"}, "date3": {"value": "2026年11月22日"}, "thing4": {"value": "请联系跟单"}}
    body = {"touser": OPENID, "template_id": "TPL_DELAY", "miniprogram_state": "trial", "lang": "zh_CN", "data": data}

    assert mp.post("message/subscribe/send", data=body)["errcode"] == 0
    assert fake.subscribe_messages == [body]


@pytest.mark.parametrize(
    "key, value",
    [
        ("thing2", "一" * 21),
        ("character_string1", "订单PO123"),
        ("phrase3", "done"),
        ("phrase3", "已经完成了啊"),
        ("time4", "2026-11-22"),
        ("time4", "tomorrow 10:00"),
        ("thing2", ""),
        ("thing2", "   "),
        ("thing2", "第一行\n第二行"),
        ("thing2", 42),
    ],
)
def test_subscribe_value_rules_reject_with_47003(fake, key, value):
    fake.grant_quota(OPENID, "TPL_NODE_DONE")
    result = subscribe(fake, mp_token(fake), data={**NODE_DONE, key: {"value": value}})

    assert result == {"errcode": 47003, "errmsg": f"argument invalid! data.{key}.value invalid"}
    assert fake.quota(OPENID, "TPL_NODE_DONE") == 1


@pytest.mark.parametrize(
    "key, value",
    [
        ("thing2", "一" * 20),
        ("character_string1", "A-1_2/3 x"),
        ("time4", "15:01"),
        ("time4", "2019年10月1日 15:01"),
        ("time4", "2026-11-22 10:00:30 ~ 2026-11-22 12:00"),
    ],
)
def test_subscribe_value_rules_accept_documented_formats(fake, key, value):
    fake.grant_quota(OPENID, "TPL_NODE_DONE")
    assert subscribe(fake, mp_token(fake), data={**NODE_DONE, key: {"value": value}})["errcode"] == 0


@pytest.mark.parametrize("value", ["2018-01-01", "2018/01/01", "2018.01.01", "2018-01", "01-01", "2019年10月1日 15:01"])
def test_date_values_accept_documented_formats(fake, value):
    fake.grant_quota(OPENID, "TPL_DELAY")
    body = {"touser": OPENID, "template_id": "TPL_DELAY", "data": {"date3": {"value": value}}}
    assert raw_post(fake, "/cgi-bin/message/subscribe/send", body, access_token=mp_token(fake))["errcode"] == 0


def test_other_value_types_follow_the_reference_limits():
    from tests.fakes.wechat import _valid_value

    cases = {
        ("number1", "3.14"): True, ("number1", "1e5"): False,
        ("letter1", "abc"): True, ("letter1", "ab1"): False,
        ("symbol1", "%$#"): True, ("symbol1", "ab"): False,
        ("amount1", "¥100.00"): True, ("amount1", "100元"): True, ("amount1", "12345678901"): False,
        ("phone_number1", "+86-13800001111"): True, ("phone_number1", "call me"): False,
        ("car_number1", "粤B12345"): True, ("car_number1", "粤B1234567"): False,
        ("name1", "张三"): True, ("name1", "张" * 11): False, ("name1", "Li Lei"): True,
        ("enum1", "任意"): True,
    }
    assert {case: _valid_value(case[0], {"value": case[1]}) for case in cases} == cases


def test_subscribe_rejects_unknown_keys_templates_users_and_states(fake):
    fake.grant_quota(OPENID, "TPL_NODE_DONE")
    token = mp_token(fake)

    assert subscribe(fake, token, data={"thing9": {"value": "x"}})["errcode"] == 47003
    assert subscribe(fake, token, template_id="TPL_UNKNOWN")["errcode"] == 40037
    assert subscribe(fake, token, touser="")["errcode"] == 40003
    assert subscribe(fake, token, miniprogram_state="release")["errcode"] == 47003
    assert subscribe(fake, token, data={"thing2": "not wrapped"})["errcode"] == 47003
    assert fake.subscribe_messages == []


# --- scripted failures ---


def test_fail_business_calls_with_answers_every_business_call(fake, mp, work):
    fake.grant_quota(OPENID, "TPL_NODE_DONE")
    fake.fail_business_calls_with = 40001

    with pytest.raises(WeChatClientException) as caught:
        mp.wxa.send_subscribe_message(OPENID, "TPL_NODE_DONE", NODE_DONE)
    assert caught.value.errcode == 40001
    with pytest.raises(WeChatClientException) as caught:
        work.message.send_text(fake.agent_id, ["zhangsan"], "hi")
    assert caught.value.errcode == 40001
    assert [r["errcode"] for r in fake.business_requests] == [40001, 40001]
    assert fake.quota(OPENID, "TPL_NODE_DONE") == 1


def test_fail_with_45009_surfaces_as_api_limited(fake, mp):
    fake.fail_business_calls_with = 45009
    with pytest.raises(APILimitedException):
        mp.wxa.send_subscribe_message(OPENID, "TPL_NODE_DONE", NODE_DONE)


def test_fail_token_calls_with_refuses_every_token_endpoint(fake, mp, work):
    fake.fail_token_calls_with = 45009
    assert stable_token(fake)["errcode"] == 45009
    with pytest.raises(WeChatClientException) as caught:
        work.message.send_text(fake.agent_id, ["zhangsan"], "hi")
    assert caught.value.errcode == 45009
    fake.fail_token_calls_with = "outage"
    query = {"grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret}
    assert requests.get(fake.url + "/cgi-bin/token", params=query, timeout=5).status_code == 503
    assert [r["path"] for r in fake.token_requests] == ["/cgi-bin/stable_token", "/cgi-bin/gettoken", "/cgi-bin/token"]
    # Business calls are not token endpoints: a login code still works with the app secret.
    fake.add_login_code("code-1", OPENID)
    params = {"appid": fake.appid, "secret": fake.secret, "js_code": "code-1", "grant_type": "authorization_code"}
    assert requests.get(fake.url + "/sns/jscode2session", params=params, timeout=5).json()["openid"] == OPENID
    assert fake.login_requests == [{"params": ["appid", "grant_type", "js_code", "secret"]}]


def test_reset_clears_state_but_keeps_config(fake, mp):
    fake.grant_quota(OPENID, "TPL_NODE_DONE")
    fake.fail_business_calls_with = 40001
    old = mp_token(fake)
    fake.fail_token_calls_with = 45009

    fake.reset()

    assert fake.quota(OPENID, "TPL_NODE_DONE") == 0
    assert fake.fail_business_calls_with is None and fake.token_requests == []
    assert fake.fail_token_calls_with is None and fake.login_requests == []
    assert subscribe(fake, old)["errcode"] == 40001
    assert mp_token(fake) != old
    assert "TPL_DELAY" in fake.templates


# --- mini program code ---


def test_wxacode_unlimit_returns_a_png(fake, mp):
    image = pytest.importorskip("PIL.Image")
    body = {"scene": "t=ABC123", "page": "pages/scan/index", "width": 430}

    response = mp.wxa._post("wxa/getwxacodeunlimit", data=body)

    assert response.headers["Content-Type"] == "image/png"
    assert image.open(io.BytesIO(response.content)).size == (1, 1)
    with pytest.raises(WeChatClientException) as caught:
        mp.wxa._post("wxa/getwxacodeunlimit", data={"scene": "x" * 33})
    assert caught.value.errcode == 40169


# --- WeCom app messages ---


def test_wecom_send_reports_unknown_members(fake, work):
    result = work.message.send_markdown(fake.agent_id, ["zhangsan", "nobody"], "**延期提醒**")

    assert result["errcode"] == 0 and result["invaliduser"] == "nobody"
    assert fake.wecom_messages[0]["delivered_to"] == ["zhangsan"]
    assert fake.wecom_messages[0]["markdown"] == {"content": "**延期提醒**"}
    with pytest.raises(WeChatClientException) as caught:
        work.message.send_text(fake.agent_id, ["nobody"], "hi")
    assert caught.value.errcode == 81013


def test_wecom_silently_drops_the_31st_message_a_minute_to_one_member(fake, work, clock):
    for _ in range(30):
        work.message.send_text(fake.agent_id, ["zhangsan"], "hi")

    result = work.message.send_text(fake.agent_id, ["zhangsan", "lisi"], "hi")

    assert result["errcode"] == 0 and result["invaliduser"] == ""
    assert fake.wecom_messages[-1]["delivered_to"] == ["lisi"]
    clock.advance(60)
    work.message.send_text(fake.agent_id, ["zhangsan"], "hi")
    assert fake.wecom_messages[-1]["delivered_to"] == ["zhangsan"]


def test_wecom_send_checks_agent_and_size(fake, work):
    with pytest.raises(WeChatClientException) as caught:
        work.message.send_text(999, ["zhangsan"], "hi")
    assert caught.value.errcode == 40056
    with pytest.raises(WeChatClientException) as caught:
        work.message.send_text(fake.agent_id, ["zhangsan"], "字" * 683)
    assert caught.value.errcode == 45002
    assert work.message.send_text(fake.agent_id, ["zhangsan"], "字" * 682)["errcode"] == 0


def test_wecom_token_is_reused_until_it_expires(fake, work):
    first = work.fetch_access_token()["access_token"]
    assert work.fetch_access_token()["access_token"] == first
    fake.expire_tokens()
    assert work.fetch_access_token()["access_token"] != first
    assert {r["path"] for r in fake.token_requests} == {"/cgi-bin/gettoken"}


# --- group robot ---


def test_robot_allows_twenty_messages_a_minute_per_key(fake, clock):
    for n in range(20):
        assert robot(fake, {"msgtype": "text", "text": {"content": f"m{n}"}})["errcode"] == 0

    over = robot(fake, {"msgtype": "text", "text": {"content": "m20"}})
    assert over == {"errcode": 45009, "errmsg": "api freq out of limit"}
    clock.advance(60)
    assert robot(fake, {"msgtype": "text", "text": {"content": "later"}})["errcode"] == 0
    assert len(fake.robot_messages) == 21 and fake.robot_messages[0]["key"] == "fake-robot-key"


def test_robot_rejects_unknown_key(fake):
    assert robot(fake, {"msgtype": "text", "text": {"content": "hi"}}, key="nope")["errcode"] == 93000
    assert fake.robot_messages == []


def test_robot_enforces_byte_limits_and_message_types(fake):
    assert robot(fake, {"msgtype": "text", "text": {"content": "x" * 2049}})["errcode"] == 45002
    assert robot(fake, {"msgtype": "markdown", "markdown": {"content": "x" * 4096}})["errcode"] == 0
    assert robot(fake, {"msgtype": "markdown", "markdown": {"content": "x" * 4097}})["errcode"] == 45002
    assert robot(fake, {"msgtype": "voice", "voice": {}})["errcode"] == 40008


# --- switches for delivery fault tests ---


def test_fail_next_answers_the_next_sends_with_scripted_failures_then_serves_again(fake):
    token = stable_token(fake)["access_token"]
    fake.grant_quota(OPENID, "TPL_NODE_DONE", 1)
    fake.timeout_seconds = 0.3
    fake.fail_next(45009)
    fake.fail_next("5xx")
    fake.fail_next("timeout")

    def post(timeout=5):
        body = {"touser": OPENID, "template_id": "TPL_NODE_DONE", "data": NODE_DONE}
        return requests.post(fake.url + "/cgi-bin/message/subscribe/send", params={"access_token": token},
                             data=json.dumps(body).encode(), timeout=timeout)

    assert post().json()["errcode"] == 45009
    assert post().status_code == 502
    with pytest.raises(requests.Timeout):
        post(timeout=0.1)
    time.sleep(0.3)  # the timed-out call ends before the next one starts
    assert fake.subscribe_messages == [] and fake.quota(OPENID, "TPL_NODE_DONE") == 1
    assert post().json()["errcode"] == 0
    assert [r.get("scripted") for r in fake.business_requests] == [45009, "5xx", "timeout", None]


def test_latency_delays_answers_concurrently(fake):
    fake.latency = 0.3
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: robot(fake, {"msgtype": "text", "text": {"content": f"m{n}"}}), range(8)))
    assert all(a["errcode"] == 0 for a in answers)
    assert 0.3 <= time.monotonic() - started < 1.2  # eight calls of 0.3 s in parallel, not 2.4 s in a row


def test_robot_window_can_be_shortened_and_refusals_are_counted(fake, clock):
    fake.robot_window = 2
    for n in range(21):
        robot(fake, {"msgtype": "text", "text": {"content": f"m{n}"}})
    assert len(fake.robot_messages) == 20 and fake.robot_refusals == 1
    clock.advance(2)
    assert robot(fake, {"msgtype": "text", "text": {"content": "next window"}})["errcode"] == 0
