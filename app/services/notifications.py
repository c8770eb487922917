"""The notification outbox: record in the caller's transaction, send from a job.

A notification row is written in the same transaction as the change that causes it and
its send job is enqueued only after commit. Sending claims the row first, so two workers
never send the same row; a crash leaves it 'sending' and the outbox flush reclaims it.
"""
from datetime import timedelta

from peewee import IntegrityError

from app.extensions import db
from app.models import Notification, SubscribeQuota, WechatUser
from app.queueing import enqueue_after_commit
from app.timeutil import utcnow

# Wait before attempt n+1 (minutes); after the last one the row is marked failed.
BACKOFF_MINUTES = (1, 5, 15, 60, 180, 360)
STUCK_AFTER = timedelta(minutes=10)


def record(channel, recipient, payload, *, template_id=None, page=None, dedup_key=None):
    """Add a notification to the outbox (idempotent by dedup_key) and send it after commit."""
    if dedup_key:
        existing = Notification.get_or_none(Notification.dedup_key == dedup_key)
        if existing:
            return existing
    try:
        with db.atomic():
            note = Notification.create(
                channel=channel,
                recipient=recipient,
                payload=payload,
                template_id=template_id,
                page=page,
                dedup_key=dedup_key,
            )
    except IntegrityError:  # the same event recorded concurrently
        return Notification.get(Notification.dedup_key == dedup_key)
    enqueue_after_commit("send-notification", note.id)
    return note


def claim(notification_id, now=None):
    """Take the row for sending; None if it is not due or another worker has it."""
    now = now or utcnow()
    stuck = now - STUCK_AFTER
    claimable = (
        ((Notification.status == "pending") & (Notification.next_attempt_at <= now))
        | ((Notification.status == "sending") & (Notification.next_attempt_at <= stuck))
    )
    taken = (Notification.update(status="sending", attempts=Notification.attempts + 1, next_attempt_at=now)
             .where((Notification.id == notification_id) & claimable)
             .execute())
    return Notification.get_by_id(notification_id) if taken else None


def finish(note, status, error=None, now=None):
    """Record the outcome of one attempt. 'retry' schedules the next one or gives up."""
    now = now or utcnow()
    fields = {"last_error": (error or "")[:255] or None}
    if status == "retry":
        if note.attempts > len(BACKOFF_MINUTES):
            fields["status"] = "failed"
        else:
            fields["status"] = "pending"
            fields["next_attempt_at"] = now + timedelta(minutes=BACKOFF_MINUTES[note.attempts - 1])
    else:
        fields["status"] = status
        if status in ("sent", "recorded"):
            fields["sent_at"] = now
    Notification.update(**fields).where(Notification.id == note.id).execute()


def due_ids(now=None, limit=1000):
    """(id, attempts) of rows a flush should (re)send: pending and due, or stuck in 'sending'."""
    now = now or utcnow()
    query = (Notification
             .select(Notification.id, Notification.attempts)
             .where(((Notification.status == "pending") & (Notification.next_attempt_at <= now))
                    | ((Notification.status == "sending") & (Notification.next_attempt_at <= now - STUCK_AFTER)))
             .order_by(Notification.id)
             .limit(limit))
    return [(row.id, row.attempts) for row in query]


# --- one-time subscribe quota ------------------------------------------------------------

def _user_id(openid):
    user = WechatUser.get_or_none(WechatUser.openid == openid)
    return user.id if user else None


def add_quota(user, template_id, count=1):
    """Each accept in wx.requestSubscribeMessage allows one more send of that template."""
    with db.atomic():
        row, _ = SubscribeQuota.get_or_create(user=user, template_id=template_id)
        (SubscribeQuota.update(remaining=SubscribeQuota.remaining + count, updated_at=utcnow())
         .where(SubscribeQuota.id == row.id)
         .execute())


def take_quota(openid, template_id):
    """Use one accept, atomically. False means: no send allowed."""
    user_id = _user_id(openid)
    if user_id is None:
        return False
    taken = (SubscribeQuota.update(remaining=SubscribeQuota.remaining - 1, updated_at=utcnow())
             .where((SubscribeQuota.user == user_id)
                    & (SubscribeQuota.template_id == template_id)
                    & (SubscribeQuota.remaining > 0))
             .execute())
    return bool(taken)


def return_quota(openid, template_id):
    """WeChat refused for a reason of ours or its own (not the user's): the accept is unused."""
    (SubscribeQuota.update(remaining=SubscribeQuota.remaining + 1, updated_at=utcnow())
     .where((SubscribeQuota.user == _user_id(openid)) & (SubscribeQuota.template_id == template_id))
     .execute())


def clear_quota(openid, template_id):
    """WeChat says the user has no accepts left (43101): trust it over our count."""
    (SubscribeQuota.update(remaining=0, updated_at=utcnow())
     .where((SubscribeQuota.user == _user_id(openid)) & (SubscribeQuota.template_id == template_id))
     .execute())


def remaining_quota(user, template_id):
    row = SubscribeQuota.get_or_none((SubscribeQuota.user == user) & (SubscribeQuota.template_id == template_id))
    return row.remaining if row else 0
