"""Who is calling: mini-program tokens, invite binding, staff passwords, ERP API keys.

Plain functions over models. The WeChat login call itself (code → openid) is bot.wechat.login,
which the web edge reaches through the app's extensions and hands the openid to `login_wechat`.
"""
import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from peewee import JOIN, IntegrityError, fn
from werkzeug.security import check_password_hash, generate_password_hash

from app.domain.errors import BadRequest, Conflict, Forbidden, Invalid, Unauthorized, not_found
from app.domain.vocabulary import API_KEY_SCOPES
from app.extensions import db, write_transaction
from app.models import ApiKey, Customer, Invite, StaffUser, Supplier, WechatUser
from app.models.prepared import Prepared, Slot
from app.models.users import STAFF_ROLES
from app.services import audit
from app.timeutil import utcnow

TOKEN_SALT = "mp-token"
API_KEY_PREFIX = "wxk"


# --- mini-program tokens -------------------------------------------------------------

def _serializer(secret_key):
    return URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT)


def issue_token(user, secret_key):
    """A signed token naming the user and the token generation it belongs to."""
    return _serializer(secret_key).dumps({"u": user.id, "v": user.token_version})


def is_api_key(token):
    """Whether a bearer credential has the form of an ERP key (valid or not): by its prefix."""
    return token.startswith(f"{API_KEY_PREFIX}_")


def credential_kind(token, secret_key):
    """What a bearer credential is meant for, valid or not: "api_key" (by its prefix) or
    "mini_program" (by its signature, expired or not); None for anything else. Lets each API
    family tell a caller that it sent the other family's credential."""
    if is_api_key(token):
        return "api_key"
    try:
        _serializer(secret_key).loads(token)
    except BadSignature:
        return None
    return "mini_program"


# Every mini-program request reads its user with what it needs of the party — whether it is active,
# and its name for the "who am I" answer — in one statement of eight columns whose SQL is written
# once (app/models/prepared.py). Few columns and plain tuples on purpose: PyMySQL parses every
# column's description on every run, and whole joined models cost this statement twice as much.
_USER_WITH_PARTY = Prepared(lambda: (
    WechatUser.select(WechatUser.id, WechatUser.role, WechatUser.supplier, WechatUser.customer,
                      WechatUser.display_name, WechatUser.token_version,
                      fn.COALESCE(Supplier.name, Customer.name), fn.COALESCE(Supplier.active, Customer.active))
    .join(Supplier, JOIN.LEFT_OUTER, on=(WechatUser.supplier == Supplier.id))
    .switch(WechatUser).join(Customer, JOIN.LEFT_OUTER, on=(WechatUser.customer == Customer.id))
    .where(WechatUser.id == Slot("id", WechatUser.id))
    .tuples()))


def _request_user(row):
    """The WechatUser of a request, with its party (the role's) loaded: what every request uses of
    them, no more (not its openid: a service that needs it reads the user itself)."""
    user_id, role, supplier_id, customer_id, display_name, version, party_name, party_active = row
    user = WechatUser(id=user_id, role=role, supplier=supplier_id, customer=customer_id,
                      display_name=display_name, token_version=version)
    # A user has at most one party (binding sets one, unbinding clears both), so COALESCE is its.
    if supplier_id is not None:
        user.supplier = Supplier(id=supplier_id, name=party_name, active=bool(party_active))
    elif customer_id is not None:
        user.customer = Customer(id=customer_id, name=party_name, active=bool(party_active))
    user._dirty.clear()
    return user


def user_for_token(token, secret_key, max_age):
    """The WechatUser a bearer token stands for; Unauthorized otherwise."""
    try:
        data = _serializer(secret_key).loads(token, max_age=max_age)
    except SignatureExpired:
        raise Unauthorized("token_expired", "登录已过期，请重新登录")
    except BadSignature:
        raise Unauthorized("invalid_token", "登录凭证无效，请重新登录")
    row = _USER_WITH_PARTY.first(id=data.get("u"))
    if row is None or row[5] != data.get("v"):
        raise Unauthorized("invalid_token", "登录凭证无效，请重新登录")
    user = _request_user(row)
    refuse_deactivated(user)
    return user


def refuse_deactivated(user):
    """A user whose supplier or customer was deactivated may not log in or act: at once, for
    tokens issued before too (every request checks)."""
    party = user.supplier if user.role == "supplier" else user.customer if user.role == "customer" else None
    if party is not None and not party.active:
        raise Unauthorized("party_deactivated", "你所在的单位已停用，请联系管理员")


def unbind(actor, user_id, reason):
    """Staff take a WeChat user off its party: it becomes unbound and every token it holds stops
    working (it may log in again, as an unbound user)."""
    with audit.transaction(actor) as log:
        user = WechatUser.get_or_none(WechatUser.id == user_id)
        if user is None:
            raise not_found("微信用户")
        before = {"role": user.role, "supplier_id": user.supplier_id, "customer_id": user.customer_id}
        (WechatUser.update(role="unbound", supplier=None, customer=None, token_version=WechatUser.token_version + 1)
         .where(WechatUser.id == user.id).execute())
        log.add("wechat_user.unbind", "wechat_user", user.id, before=before,
                after={"role": "unbound", "supplier_id": None, "customer_id": None}, reason=reason)
    return WechatUser.get_by_id(user.id)


def wechat_users_query(supplier_id=None, customer_id=None, role=None):
    query = WechatUser.select().order_by(WechatUser.id)
    if supplier_id:
        query = query.where(WechatUser.supplier == supplier_id)
    if customer_id:
        query = query.where(WechatUser.customer == customer_id)
    if role:
        query = query.where(WechatUser.role == role)
    return query


def revoke_tokens(actor, user_id, reason):
    """Every token the user holds stops working; it stays bound and may log in again."""
    with audit.transaction(actor) as log:
        changed = (WechatUser.update(token_version=WechatUser.token_version + 1)
                   .where(WechatUser.id == user_id).execute())
        if not changed:
            raise not_found("微信用户")
        log.add("wechat_user.revoke_tokens", "wechat_user", user_id, reason=reason)
    return WechatUser.get_by_id(user_id)


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
    """Bind `user` to the invite's supplier or customer. Binding twice to the same party is a no-op.

    The user is claimed first (unbound → bound, compare-and-set), then the invite's use is
    counted, in one transaction: of several invites one unbound user sends at once, exactly one
    binds it and only that invite's use is taken."""
    with write_transaction():
        invite = Invite.get_or_none(Invite.code == code)
        if invite is None or invite.revoked_at or invite.expires_at <= utcnow():
            raise _invalid_invite()
        party_field = "supplier_id" if invite.kind == "supplier" else "customer_id"
        party_id = getattr(invite, party_field)
        if not invite.party.active:
            raise _invalid_invite()
        claimed = (WechatUser.update(role=invite.kind, **{party_field: party_id})
                   .where((WechatUser.id == user.id) & (WechatUser.role == "unbound"))
                   .execute())
        if not claimed:
            current = WechatUser.get_by_id(user.id)
            if current.role == invite.kind and getattr(current, party_field) == party_id:
                return current  # already bound here: a repeat, nothing counted
            raise Conflict("already_bound", "该微信已绑定其他单位，请联系管理员解绑")
        # Count the use atomically so two phones cannot both take the last use.
        taken = (Invite.update(uses=Invite.uses + 1)
                 .where((Invite.id == invite.id) & (Invite.uses < Invite.max_uses))
                 .execute())
        if not taken:
            raise _invalid_invite()  # rolls the claim back too
    return WechatUser.get_by_id(user.id)


# --- staff -------------------------------------------------------------------------------

def create_staff(username, password, role, display_name=None, wecom_userid=None):
    if role not in STAFF_ROLES:
        raise Invalid("validation_error", f"角色必须是 {', '.join(STAFF_ROLES)} 之一", field="role")
    if len(password) < 8:
        raise Invalid("validation_error", "密码至少 8 位", field="password")
    if StaffUser.select().where(StaffUser.username == username).exists():
        raise Conflict("username_taken", f"用户名 {username} 已存在", field="username")
    return StaffUser.create(
        username=username,
        display_name=display_name or username,
        password_hash=generate_password_hash(password),
        role=role,
        wecom_userid=wecom_userid,
    )


WECOM_USERID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")  # what WeCom allows in a member's account id


def bind_wecom(actor, staff_id, wecom_userid, by=None):
    """Bind staff user `staff_id` to a WeCom member (None: unbind). WeCom alerts go to that member
    and the manager bot answers them as this staff user. `by`: the staff member binding (None:
    the CLI); a manager may not bind an admin, or the bot would let them act as one. → the user."""
    wecom_userid = (wecom_userid or "").strip() or None
    if wecom_userid is not None and not WECOM_USERID.match(wecom_userid):
        raise Invalid("validation_error", "企业微信账号只能包含字母、数字和 _ . @ -，最长 64 位", field="wecom_userid")
    try:
        with audit.transaction(actor) as log:
            user = StaffUser.get_or_none(StaffUser.id == staff_id)
            if user is None:
                raise not_found("员工")
            if by is not None and by.role != "admin" and user.role == "admin":
                raise Forbidden("forbidden", "只有管理员可以绑定管理员的企业微信账号")
            if user.wecom_userid == wecom_userid:
                return user
            holder = StaffUser.get_or_none((StaffUser.wecom_userid == wecom_userid) & (StaffUser.id != user.id))
            if wecom_userid is not None and holder is not None:
                raise Conflict("wecom_userid_taken", f"企业微信账号 {wecom_userid} 已绑定员工 {holder.username}",
                               field="wecom_userid")
            StaffUser.update(wecom_userid=wecom_userid).where(StaffUser.id == user.id).execute()
            log.add("staff.wecom", "staff", user.id, before={"wecom_userid": user.wecom_userid},
                    after={"wecom_userid": wecom_userid})
    except IntegrityError as exc:  # bound to someone else in the meantime
        raise Conflict("wecom_userid_taken", f"企业微信账号 {wecom_userid} 已绑定其他员工", field="wecom_userid") from exc
    return StaffUser.get_by_id(staff_id)


def staff_query():
    """Staff users, by username."""
    return StaffUser.select().order_by(StaffUser.username)


def authenticate_staff(username, password):
    user = StaffUser.get_or_none((StaffUser.username == username) & StaffUser.active)
    # Hash even for an unknown name so response time does not reveal which names exist.
    stored = user.password_hash if user else generate_password_hash("timing-equaliser")
    if not check_password_hash(stored, password) or user is None:
        raise Unauthorized("invalid_credentials", "用户名或密码错误")
    user.last_login_at = utcnow()
    user.save(only=[StaffUser.last_login_at])
    return user


def end_staff_sessions(user):
    """Logout: every dashboard session of this user issued so far stops working."""
    StaffUser.update(session_version=StaffUser.session_version + 1).where(StaffUser.id == user.id).execute()


# --- ERP API keys ---------------------------------------------------------------------------

def _digest(key):
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(name, scopes=("orders",)):
    """Return (ApiKey row, plaintext key). The plaintext is shown once and never stored. `scopes`
    say what the key may change (API_KEY_SCOPES); an order-sync key cannot issue invites."""
    unknown = [s for s in scopes if s not in API_KEY_SCOPES]
    if unknown or not scopes:
        raise Invalid("validation_error", f"权限范围必须是 {', '.join(API_KEY_SCOPES)} 中的一个或多个", field="scopes")
    prefix = secrets.token_hex(4)
    key = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey.create(name=name, prefix=prefix, key_hash=_digest(key), scopes=" ".join(dict.fromkeys(scopes)))
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
