"""Who is calling: mini-program tokens, invite binding, staff passwords, ERP API keys.

Plain functions over models. The WeChat login call itself (code → openid) is bot.wechat.login,
which the web edge reaches through the app's extensions and hands the openid to `login_wechat`.
"""
import hashlib
import hmac
import secrets
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from peewee import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app.domain.errors import BadRequest, Conflict, Invalid, Unauthorized
from app.extensions import db
from app.models import ApiKey, Invite, StaffUser, Supplier, WechatUser
from app.models.users import STAFF_ROLES
from app.timeutil import utcnow

TOKEN_SALT = "mp-token"
API_KEY_PREFIX = "wxk"


# --- mini-program tokens -------------------------------------------------------------

def _serializer(secret_key):
    return URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT)


def issue_token(user, secret_key):
    """A signed token naming the user and the token generation it belongs to."""
    return _serializer(secret_key).dumps({"u": user.id, "v": user.token_version})


def user_for_token(token, secret_key, max_age):
    """The WechatUser a bearer token stands for; Unauthorized otherwise."""
    try:
        data = _serializer(secret_key).loads(token, max_age=max_age)
    except SignatureExpired:
        raise Unauthorized("token_expired", "登录已过期，请重新登录")
    except BadSignature:
        raise Unauthorized("invalid_token", "登录凭证无效，请重新登录")
    user = WechatUser.get_or_none(WechatUser.id == data.get("u"))
    if user is None or user.token_version != data.get("v"):
        raise Unauthorized("invalid_token", "登录凭证无效，请重新登录")
    return user


def login_wechat(openid, unionid=None):
    """Find or create the WechatUser for an openid WeChat vouched for."""
    now = utcnow()
    user = WechatUser.get_or_none(WechatUser.openid == openid)
    if user is None:
        try:
            with db.atomic():
                user = WechatUser.create(openid=openid, unionid=unionid, last_login_at=now)
        except IntegrityError:  # the same person's other request won the race
            user = WechatUser.get(WechatUser.openid == openid)
    else:
        (WechatUser.update(last_login_at=now, unionid=unionid or WechatUser.unionid)
         .where(WechatUser.id == user.id)
         .execute())
    return user


# --- invites ---------------------------------------------------------------------------

def _invalid_invite():
    return BadRequest("invalid_invite", "邀请码无效、已过期或已被使用", field="invite_code")


def create_invite(party, created_by=None, ttl_days=14, max_uses=1):
    """An invite for one supplier or customer; the code is what the WeChat user types or scans."""
    kind = "supplier" if isinstance(party, Supplier) else "customer"
    return Invite.create(
        code=secrets.token_urlsafe(12),
        kind=kind,
        supplier=party if kind == "supplier" else None,
        customer=party if kind == "customer" else None,
        created_by=created_by,
        max_uses=max_uses,
        expires_at=utcnow() + timedelta(days=ttl_days),
    )


def bind_invite(user, code):
    """Bind `user` to the invite's supplier or customer. Binding twice to the same party is a no-op."""
    with db.atomic():
        invite = Invite.get_or_none(Invite.code == code)
        if invite is None or invite.revoked_at or invite.expires_at <= utcnow():
            raise _invalid_invite()
        party_field = "supplier_id" if invite.kind == "supplier" else "customer_id"
        party_id = getattr(invite, party_field)
        if user.role == invite.kind and getattr(user, party_field) == party_id:
            return user
        if user.role != "unbound":
            raise Conflict("already_bound", "该微信已绑定其他单位，请联系管理员解绑")
        # Count the use atomically so two phones cannot both take the last use.
        taken = (Invite.update(uses=Invite.uses + 1)
                 .where((Invite.id == invite.id) & (Invite.uses < Invite.max_uses))
                 .execute())
        if not taken:
            raise _invalid_invite()
        user.role = invite.kind
        setattr(user, party_field, party_id)
        user.save()
    return user


# --- staff -------------------------------------------------------------------------------

def create_staff(username, password, role, display_name=None, wecom_userid=None):
    if role not in STAFF_ROLES:
        raise Invalid("validation_error", f"角色必须是 {', '.join(STAFF_ROLES)} 之一", field="role")
    if len(password) < 8:
        raise Invalid("validation_error", "密码至少 8 位", field="password")
    return StaffUser.create(
        username=username,
        display_name=display_name or username,
        password_hash=generate_password_hash(password),
        role=role,
        wecom_userid=wecom_userid,
    )


def authenticate_staff(username, password):
    user = StaffUser.get_or_none((StaffUser.username == username) & StaffUser.active)
    # Hash even for an unknown name so response time does not reveal which names exist.
    stored = user.password_hash if user else generate_password_hash("timing-equaliser")
    if not check_password_hash(stored, password) or user is None:
        raise Unauthorized("invalid_credentials", "用户名或密码错误")
    user.last_login_at = utcnow()
    user.save(only=[StaffUser.last_login_at])
    return user


# --- ERP API keys ---------------------------------------------------------------------------

def _digest(key):
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(name):
    """Return (ApiKey row, plaintext key). The plaintext is shown once and never stored."""
    prefix = secrets.token_hex(4)
    key = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey.create(name=name, prefix=prefix, key_hash=_digest(key))
    return row, key


def api_key_for(key):
    """The live ApiKey a presented key matches, or None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    row = ApiKey.get_or_none((ApiKey.prefix == parts[1]) & ApiKey.revoked_at.is_null())
    if row is None or not hmac.compare_digest(row.key_hash, _digest(key)):
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=5):
        # Coarse on purpose: an ERP sync should not turn every read into a write.
        ApiKey.update(last_used_at=now).where(ApiKey.id == row.id).execute()
    return row
