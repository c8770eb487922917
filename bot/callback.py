"""The WeCom app callback (reference/wechat-platform.md §5.1, §5.3): the manager bot's wire side.

WeCom signs every call with WECOM_TOKEN (msg_signature = sha1 of the sorted token, timestamp,
nonce and ciphertext) and encrypts with WECOM_ENCODING_AES_KEY; the plaintext ends with our
corp id. wechatpy 1.8.18's `wechatpy.enterprise` does the crypto and the parsing (there is no
`wechatpy.work` in 1.8). What the answer says is app/services/bot_commands.py's business; here
it is cut to WeCom's 2048 bytes and sent back encrypted, as the passive reply to that call.
"""
import logging

from wechatpy.enterprise import WeChatCrypto, create_reply, parse_message
from wechatpy.enterprise.exceptions import InvalidCorpIdException
from wechatpy.exceptions import InvalidSignatureException

from app.domain.errors import BadRequest, Forbidden, NotFound
from app.services import bot_commands
from bot.render import cut_bytes

log = logging.getLogger(__name__)

PARAMS = ("msg_signature", "timestamp", "nonce")


class WeComCallback:
    """Installed on the extensions by create_app as `wecom_callback`; the web edge calls
    `verify_url` (GET) and `answer` (POST) with the query arguments and the body."""

    def __init__(self, config):
        self.config = config

    def _crypto(self):
        cfg = self.config
        if not (cfg.get("WECOM_TOKEN") and cfg.get("WECOM_ENCODING_AES_KEY") and cfg.get("WECOM_CORP_ID")):
            raise NotFound("wecom_callback_off", "企业微信回调未配置（WECOM_TOKEN、WECOM_ENCODING_AES_KEY、WECOM_CORP_ID）")
        try:
            return WeChatCrypto(cfg["WECOM_TOKEN"], cfg["WECOM_ENCODING_AES_KEY"], cfg["WECOM_CORP_ID"])
        except (AssertionError, ValueError) as exc:  # a key that is not 43 base64 characters
            raise NotFound("wecom_callback_off", "WECOM_ENCODING_AES_KEY 不是有效的 43 位密钥") from exc

    def verify_url(self, args):
        """URL verification when the callback is saved in the WeCom console: → the decrypted echostr."""
        crypto = self._crypto()
        signature, timestamp, nonce = _params(args)
        echostr = args.get("echostr")
        if not echostr:
            raise BadRequest("bad_callback", "缺少 echostr")
        return _checked(lambda: crypto.check_signature(signature, timestamp, nonce, echostr))

    def answer(self, args, body):
        """One delivered message → the encrypted passive reply ("" when there is nothing to say)."""
        crypto = self._crypto()
        signature, timestamp, nonce = _params(args)
        xml = _checked(lambda: crypto.decrypt_message(body, signature, timestamp, nonce))
        try:
            message = parse_message(xml)
        except Exception as exc:  # xmltodict's and KeyError's: not a message we can read
            raise BadRequest("bad_callback", "无法解析的消息") from exc
        if message is None or message.type == "event":
            return ""  # entering the app, menu clicks …: nothing to answer
        key = f"wecom:{message.id}" if message.id else f"wecom:{message.source}:{message.time}"
        text = message.content if message.type == "text" else ""
        content = bot_commands.reply_once(key, message.source, text, limit=bot_commands.TEXT_LIMIT)
        if not content:
            return ""
        reply = create_reply(cut_bytes(content, bot_commands.TEXT_LIMIT), message)
        return crypto.encrypt_message(reply.render(), nonce, timestamp)


def _params(args):
    values = [args.get(name) for name in PARAMS]
    if not all(values):
        raise BadRequest("bad_callback", "缺少 msg_signature、timestamp 或 nonce")
    return values


def _checked(call):
    """Run a decryption; a wrong signature or corp id is 403, a body that is not ours 400."""
    try:
        return call()
    except (InvalidSignatureException, InvalidCorpIdException) as exc:
        log.warning("wecom callback refused: %s", type(exc).__name__)
        raise Forbidden("bad_signature", "签名校验失败") from exc
    except Exception as exc:  # bad base64, bad padding, not XML: nothing WeCom would send
        log.warning("wecom callback unreadable: %s", type(exc).__name__)
        raise BadRequest("bad_callback", "无法解密的消息") from exc
