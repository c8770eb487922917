"""The wechatpy clients: bounded token refresh, a token shared between processes, timeouts."""
import pytest

from app.extensions import current
from bot import wechat
from tests.helpers import wechat_settings


def _send_subscribe(app):
    with app.app_context():
        return wechat.mini_program(current()).post(
            "message/subscribe/send",
            data={"touser": "openid-1", "template_id": "TPL_NODE_DONE", "data": {"thing2": {"value": "钣金机箱"}}},
        )


def test_a_token_refresh_storm_ends_after_a_bounded_number_of_tries(wechat_app, wechat_fake):
    wechat_fake.grant_quota("openid-1", "TPL_NODE_DONE")
    wechat_fake.fail_business_calls_with = 40001  # WeChat rejects every token, forever

    with pytest.raises(wechat.WeChatTokenError) as err:
        _send_subscribe(wechat_app)

    retries = wechat_app.config["WECHAT_TOKEN_RETRIES"]
    # Each refresh costs at most a normal and a forced token request; WeChat's 30 s spacing
    # for forced refreshes may end the storm even earlier.
    assert 2 <= len(wechat_fake.business_requests) <= retries + 1
    assert len(wechat_fake.token_requests) <= 1 + 2 * retries
    assert "token" in str(err.value)
    assert wechat_fake.quota("openid-1", "TPL_NODE_DONE") == 1  # nothing was sent


def test_an_expired_token_is_refreshed_once_and_the_call_succeeds(wechat_app, wechat_fake):
    wechat_fake.grant_quota("openid-1", "TPL_NODE_DONE", n=2)
    _send_subscribe(wechat_app)
    wechat_fake.expire_tokens()

    assert _send_subscribe(wechat_app)["errcode"] == 0

    assert len(wechat_fake.subscribe_messages) == 2
    assert [r["errcode"] for r in wechat_fake.business_requests] == [0, 42001, 0]


def test_processes_share_one_token(make_app, wechat_fake, backend):
    if backend["name"] != "mysql":
        pytest.skip("tokens are shared through Redis; the embedded default is one process")
    wechat_fake.grant_quota("openid-1", "TPL_NODE_DONE", n=3)
    web, worker = make_app(**wechat_settings(wechat_fake)), make_app(**wechat_settings(wechat_fake))

    _send_subscribe(web)
    _send_subscribe(worker)
    _send_subscribe(web)

    assert len(wechat_fake.token_requests) == 1


def test_unreachable_wechat_is_a_clear_retryable_error(make_app, wechat_fake):
    settings = {**wechat_settings(wechat_fake), "WECHAT_API_BASE_URL": "http://127.0.0.1:1", "WECHAT_HTTP_TIMEOUT": 1}
    app = make_app(**settings)
    with pytest.raises(wechat.WeChatUnavailable):
        _send_subscribe(app)
