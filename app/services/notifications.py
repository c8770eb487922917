"""The notification outbox: record in the caller's transaction, send from a job.

A notification row is written in the same transaction as the change that causes it; after
commit one send job is woken (not one job per row: a job claims batches of due rows). Claiming
sets status 'sending' and a claim token in one UPDATE guarded by the row's state, so two
workers or machines never hold the same row; every outcome is written only by the holder of
the token. A holder that dies leaves the row 'sending': once its lease has run out
(OUTBOX_LEASE_SECONDS after the claim) the row is claimable again (README "Production").
"""
import uuid
from datetime import timedelta

from peewee import IntegrityError

from app.extensions import db, is_mysql, write_transaction
from app.models import Notification, SubscribeQuota, WechatUser
from app.queueing import enqueue_after_commit_once
from app.timeutil import utcnow

# Wait before attempt n+1 (minutes); after the last one the row is marked failed.
BACKOFF_MINUTES = (1, 5, 15, 60, 180, 360)
STUCK_AFTER = timedelta(minutes=10)  # the default lease (OUTBOX_LEASE_SECONDS)
# 'digested': an alert message sent as part of a group robot's digest (last_error names the digest row).
FINAL = ("sent", "recorded", "no_quota", "failed", "digested")
DELIVER_JOB = "deliver-outbox"


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
    wake()
    return note


def wake():
    """After commit, make sure a delivery job is waiting: one per transaction, however many rows."""
    enqueue_after_commit_once(DELIVER_JOB)


def _claimable(now, lease):
    return (((Notification.status == "pending") & (Notification.next_attempt_at <= now))
            | ((Notification.status == "sending") & (Notification.next_attempt_at <= now - lease)))


def claim(notification_id, now=None, lease=STUCK_AFTER):
    """Take one row for sending; None if it is not due or another sender holds it."""
    now = now or utcnow()
    token = uuid.uuid4().hex
    taken = (Notification.update(status="sending", attempts=Notification.attempts + 1, next_attempt_at=now,
                                 claim_token=token)
             .where((Notification.id == notification_id) & _claimable(now, lease))
             .execute())
    return Notification.get_by_id(notification_id) if taken else None


def claim_batch(size, now=None, lease=STUCK_AFTER):
    """Take up to `size` due rows (pending and due, or 'sending' with an expired lease) under one
    new claim token; the rows, oldest due first. On MySQL the candidates are read FOR UPDATE SKIP
    LOCKED, so concurrent claimers take different rows instead of queueing on the same ones; on
    SQLite the write transaction begins IMMEDIATE (one writer). The UPDATE re-checks the state
    either way, so a row is never held twice."""
    now = now or utcnow()
    token = uuid.uuid4().hex
    with write_transaction():
        query = (Notification.select(Notification.id).where(_claimable(now, lease))
                 .order_by(Notification.next_attempt_at, Notification.id).limit(size))
        if is_mysql():
            query = query.for_update("FOR UPDATE SKIP LOCKED")
        ids = [row.id for row in query]
        if not ids:
            return []
        (Notification.update(status="sending", attempts=Notification.attempts + 1, next_attempt_at=now,
                             claim_token=token)
         .where(Notification.id.in_(ids) & _claimable(now, lease))
         .execute())
    return list(Notification.select().where(Notification.claim_token == token).order_by(Notification.id))


def finish(note, status, error=None, now=None, wait=None):
    """Record the outcome of one attempt, if this sender still holds the row.

    'retry' schedules the next attempt with back-off or gives up ('failed'); 'wait' puts the row
    back for `wait` seconds without counting the attempt (a rate-limit window: a queue, not an
    error); anything else is final. Returns False when the claim was lost (lease expired)."""
    now = now or utcnow()
    fields = {"last_error": (error or "")[:255] or None}
    if status == "retry":
        if note.attempts > len(BACKOFF_MINUTES):
            fields["status"] = "failed"
        else:
            fields["status"] = "pending"
            fields["next_attempt_at"] = now + timedelta(minutes=BACKOFF_MINUTES[note.attempts - 1])
    elif status == "wait":
        fields["status"] = "pending"
        fields["next_attempt_at"] = now + timedelta(seconds=wait or 1)
        fields["attempts"] = Notification.attempts - 1
    else:
        fields["status"] = status
        if status in ("sent", "recorded"):
            fields["sent_at"] = now
    fields["claim_token"] = None
    owned = (Notification.id == note.id) & (Notification.status == "sending")
    if note.claim_token:
        owned &= Notification.claim_token == note.claim_token
    return bool(Notification.update(**fields).where(owned).execute())


def digest(notes, content, now=None):
    """Fold claimed rows for one recipient into one new row, claimed by the same sender and sent in
    their place; the rows end 'digested', naming it. One transaction: either the digest exists and
    the rows point to it, or nothing changed (the rows are then sent one by one)."""
    now = now or utcnow()
    first = notes[0]
    with db.atomic():
        row = Notification.create(channel=first.channel, recipient=first.recipient, status="sending", attempts=1,
                                  payload={"content": content, "digest_of": len(notes)},
                                  claim_token=first.claim_token, next_attempt_at=now)
        (Notification.update(status="digested", last_error=f"digested into #{row.id}", claim_token=None)
         .where(Notification.id.in_([n.id for n in notes]) & (Notification.status == "sending")
                & (Notification.claim_token == first.claim_token))
         .execute())
    return row


def due_ids(now=None, limit=1000, lease=STUCK_AFTER):
    """(id, attempts) of rows a flush should (re)send: pending and due, or stuck in 'sending'."""
    now = now or utcnow()
    query = (Notification
             .select(Notification.id, Notification.attempts)
             .where(_claimable(now, lease))
             .order_by(Notification.id)
             .limit(limit))
    return [(row.id, row.attempts) for row in query]


def next_due_at():
    """When the earliest pending row becomes due (None when nothing is pending)."""
    row = (Notification.select(Notification.next_attempt_at).where(Notification.status == "pending")
           .order_by(Notification.next_attempt_at).first())
    return row.next_attempt_at if row else None


# --- operations: what the outbox CLI shows and does ------------------------------------------

def failed_rows(limit=100):
    return list(Notification.select().where(Notification.status == "failed")
                .order_by(Notification.id.desc()).limit(limit))


def stuck_rows(now=None, lease=STUCK_AFTER, late=timedelta(minutes=10), limit=100):
    """Rows that should have gone and have not: 'sending' past their lease (a dead sender), or
    pending for longer than `late` after they were due (no worker, or Redis down)."""
    now = now or utcnow()
    return list(Notification.select()
                .where(((Notification.status == "sending") & (Notification.next_attempt_at <= now - lease))
                       | ((Notification.status == "pending") & (Notification.next_attempt_at <= now - late)))
                .order_by(Notification.id).limit(limit))


def resend(notification_id, now=None):
    """Put a row back in the queue now, with fresh attempts: an operator's decision after fixing
    the cause (a template, a recipient). A row being sent is refused (None); so is a missing one."""
    now = now or utcnow()
    with db.atomic():
        changed = (Notification.update(status="pending", attempts=0, next_attempt_at=now, claim_token=None,
                                       last_error=None, sent_at=None)
                   .where((Notification.id == notification_id) & (Notification.status != "sending"))
                   .execute())
        if changed:
            wake()
    return Notification.get_by_id(notification_id) if changed else None


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


def take_quota_for(note):
    """Take one unit for this row, once: a row reclaimed after a crash keeps the unit it holds.
    False means no accept is left (the row is then final: no_quota)."""
    if note.quota_held:
        return True
    with db.atomic():
        if not take_quota(note.recipient, note.template_id):
            return False
        Notification.update(quota_held=True).where(Notification.id == note.id).execute()
    note.quota_held = True
    return True


def release_quota_for(note):
    """WeChat refused for a reason that is not the user's: the row no longer holds a unit."""
    with db.atomic():
        return_quota(note.recipient, note.template_id)
        Notification.update(quota_held=False).where(Notification.id == note.id).execute()
    note.quota_held = False


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
