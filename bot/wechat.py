"""wechatpy 1.8.18 clients made safe for several processes (see reference/wechat-platform.md §2).

What is fixed here, once, for every WeChat and WeCom call:
- hosts come from WECHAT_API_BASE_URL / WECOM_API_BASE_URL (wechatpy hard-codes them) and
  every request, the token request included, has a timeout;
- the access token lives in shared storage (Redis when configured) and is refreshed under a
  lock, so web processes and workers do not invalidate each other's tokens;
- a token error (40001/40014/42001) refreshes the token and retries a bounded number of
  times, instead of wechatpy's unbounded recursion, then fails with a clear error;
- login (jscode2session) uses the app secret alone, never a token, so it works while the
  token endpoint refuses (45009) or is down.
"""
import logging
import threading
from contextlib import contextmanager

import requests
from wechatpy import WeChatClient
from wechatpy.enterprise import WeChatClient as WeComClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session.memorystorage import MemoryStorage
from wechatpy.session.redisstorage import RedisStorage

from app.domain.errors import BadRequest, Forbidden, RateLimited, Unavailable

log = logging.getLogger(__name__)

TOKEN_ERRORS = {40001, 40014, 42001}
REAL_WECHAT = "https://api.weixin.qq.com"
REAL_WECOM = "https://qyapi.weixin.qq.com"
# Tokens live 7200 s; every process treats them as stale 5 minutes early, which keeps
# them inside the platform's 5-minute overlap (wechatpy #684: expires_at is per process).
EARLY_REFRESH = 300


class WeChatUnavailable(Exception):
    """WeChat could not be reached or answered 'busy'; worth retrying later."""


class WeChatTokenError(WeChatUnavailable):
    """The token stayed invalid after the bounded refreshes."""


class WeChatHttp(requests.Session):
    """Sends wechatpy's hard-coded URLs to the configured bases, always with a timeout."""

    def __init__(self, wechat_base, wecom_base, timeout):
        super().__init__()
        self.rewrites = [(REAL_WECHAT, wechat_base.rstrip("/")), (REAL_WECOM, wecom_base.rstrip("/"))]
        self.default_timeout = timeout

    def request(self, method, url, *args, **kwargs):
        for real, base in self.rewrites:
            if url.startswith(real):
                url = base + url[len(real):]
                break
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)


def _tokenless_call(client, what, url, **kwargs):
    """A call that authenticates with the app secret, not an access token (the token endpoints,
    jscode2session), with wechatpy's error conventions and the client's base URL and timeout."""
    try:
        res = client._http.request(url=url, **kwargs)
        res.raise_for_status()
        result = res.json()
    except (requests.RequestException, ValueError) as exc:
        raise WeChatUnavailable(f"{what} request failed: {type(exc).__name__}") from exc
    if result.get("errcode"):
        raise WeChatClientException(result["errcode"], result.get("errmsg"), client=client)
    return result


_local_locks = {}
_local_locks_guard = threading.Lock()


class SharedTokenMixin:
    """Token handling shared by the mini-program and WeCom clients."""

    redis = None
    token_retries = 2

    @property
    def access_token(self):
        token = self.session.get(self.access_token_key)
        return token or self.refresh_token()

    def refresh_token(self, failed_token=None):
        """Get a fresh token unless another process already replaced the one that failed.

        After a token error the normal request is tried first (it may hand out a newer
        token); only if it returns the rejected token again is a forced refresh asked for,
        which WeChat allows 20 times a day, 30 s apart."""
        with self._token_lock():
            current = self.session.get(self.access_token_key)
            if current and current != failed_token:
                return current
            try:
                result = self.request_token(force=False)
                if failed_token is not None and result["access_token"] == failed_token:
                    result = self.request_token(force=True)
            except WeChatClientException as exc:
                if failed_token is None:
                    raise
                raise WeChatTokenError(f"token refresh refused ({exc.errcode}: {exc.errmsg})") from exc
            ttl = max(int(result.get("expires_in", 7200)) - EARLY_REFRESH, 60)
            self.session.set(self.access_token_key, result["access_token"], ttl)
            return result["access_token"]

    @contextmanager
    def _token_lock(self):
        name = f"wechat:lock:{self.access_token_key}"
        if self.redis is not None:
            lock = self.redis.lock(name, timeout=15, blocking_timeout=10)
            acquired = lock.acquire()
        else:
            with _local_locks_guard:
                lock = _local_locks.setdefault(name, threading.Lock())
            acquired = lock.acquire(timeout=10)
        if not acquired:
            raise WeChatUnavailable("timed out waiting for the token refresh lock")
        try:
            yield
        finally:
            lock.release()

    def _request(self, method, url_or_endpoint, **kwargs):
        last = None
        for _ in range(self.token_retries + 1):
            params = dict(kwargs.get("params") or {})
            token = params.get("access_token") or self.access_token
            params["access_token"] = token
            try:
                return super()._request(method, url_or_endpoint, **{**kwargs, "params": params})
            except WeChatClientException as exc:
                if exc.errcode not in TOKEN_ERRORS:
                    raise
                last = exc
                log.warning("wechat token rejected, refreshing", extra={"errcode": exc.errcode})
                self.refresh_token(failed_token=token)
            except requests.RequestException as exc:
                raise WeChatUnavailable(f"request failed: {type(exc).__name__}") from exc
        raise WeChatTokenError(
            f"token still rejected ({last.errcode}) after {self.token_retries} refreshes"
        ) from last


class MiniProgramClient(SharedTokenMixin, WeChatClient):
    """Mini program: login (code2Session) and subscribe messages. Uses the stable token API,
    whose normal mode returns the same token to every caller, so concurrent refreshes agree."""

    def request_token(self, force=False):
        return _tokenless_call(
            self, "token", f"{REAL_WECHAT}/cgi-bin/stable_token",
            method="POST",
            json={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self.secret,
                "force_refresh": force,
            },
        )

    def fetch_access_token(self):
        return {"access_token": self.refresh_token()}


class WeComAppClient(SharedTokenMixin, WeComClient):
    """WeCom (企业微信) self-built app: manager alerts and the bot's replies."""

    def request_token(self, force=False):
        return _tokenless_call(
            self, "token", f"{REAL_WECOM}/cgi-bin/gettoken",
            method="GET",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )

    def fetch_access_token(self):
        return {"access_token": self.refresh_token()}


def _storage(ext):
    if ext.redis is not None:
        return RedisStorage(ext.redis, prefix="wechatpy")
    return ext._wechat.setdefault("memory_storage", MemoryStorage())


def _prepare(client, ext):
    cfg = ext.config
    client._http = WeChatHttp(cfg["WECHAT_API_BASE_URL"], cfg["WECOM_API_BASE_URL"], cfg["WECHAT_HTTP_TIMEOUT"])
    client.timeout = cfg["WECHAT_HTTP_TIMEOUT"]
    client.redis = ext.redis
    client.token_retries = cfg["WECHAT_TOKEN_RETRIES"]
    return client


def mini_program(ext):
    """The app's mini-program client, built once per app."""
    if "mp" not in ext._wechat:
        cfg = ext.config
        client = MiniProgramClient(cfg["WECHAT_APP_ID"], cfg["WECHAT_APP_SECRET"], session=_storage(ext), auto_retry=False)
        ext._wechat["mp"] = _prepare(client, ext)
    return ext._wechat["mp"]


def wecom(ext):
    """The app's WeCom client, built once per app."""
    if "wecom" not in ext._wechat:
        cfg = ext.config
        client = WeComAppClient(cfg["WECOM_CORP_ID"], cfg["WECOM_SECRET"], session=_storage(ext), auto_retry=False)
        ext._wechat["wecom"] = _prepare(client, ext)
    return ext._wechat["wecom"]


# WeChat's answers to a bad code2Session, as our users should read them.
_LOGIN_ERRORS = {
    40029: (BadRequest, "invalid_login_code", "登录凭证无效或已使用，请重新打开小程序"),
    40163: (BadRequest, "invalid_login_code", "登录凭证已使用，请重新打开小程序"),
    45011: (RateLimited, "login_rate_limited", "登录过于频繁，请稍后再试"),
    40226: (Forbidden, "login_blocked", "该微信账号暂时无法登录"),
}


def login(ext, code):
    """wx.login code → {"openid", "unionid"?}, or a domain error our users can read.
    create_app installs this as `Extensions.wechat_login`, so web layers never import bot/."""
    try:
        return code_to_session(ext, code)
    except WeChatClientException as exc:
        log.warning("code2session refused", extra={"errcode": exc.errcode})
        kind, err_code, message = _LOGIN_ERRORS.get(
            exc.errcode, (Unavailable, "wechat_unavailable", "微信服务暂时不可用，请稍后再试"))
        raise kind(err_code, message)
    except WeChatUnavailable as exc:
        log.warning("code2session unavailable: %s", exc)
        raise Unavailable("wechat_unavailable", "微信服务暂时不可用，请稍后再试")


def code_to_session(ext, code):
    """wx.login code → {"openid", "unionid"?}. The session_key is dropped here: it must never
    leave this function (not returned, not logged).

    jscode2session authenticates with the app secret; wechatpy's client would fetch an access
    token first, so a refusing token endpoint (45009, an outage) or a cold cache would stop
    every login. Called directly instead, without a token."""
    client = mini_program(ext)
    result = _tokenless_call(
        client, "code2session", f"{REAL_WECHAT}/sns/jscode2session", method="GET",
        params={"appid": client.appid, "secret": client.secret, "js_code": code, "grant_type": "authorization_code"},
    )
    return {"openid": result["openid"], "unionid": result.get("unionid")}
