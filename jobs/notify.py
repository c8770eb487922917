"""Send outbox notifications: a job claims batches of due rows and sends them concurrently.

One job is woken per committing transaction (not per row) and works through everything due;
when a full batch shows there is more, it wakes another run, so every worker on `notify` helps.
Within a batch, rows are grouped in lanes sent one after another (one lane per subscribe
recipient: WeChat refuses concurrent calls to one openid with 43108; one lane for the group
robot, whose window is per key) and the lanes run on OUTBOX_THREADS threads. Each row's outcome
is committed as soon as WeChat has answered it.
"""
import logging
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from flask import current_app

from app.extensions import current, db, is_mysql
from app.queueing import enqueue_at, enqueue_coalesced
from app.services import alert_routing, notifications
from app.timeutil import utcnow
from bot import channels

log = logging.getLogger(__name__)


def _lease():
    return timedelta(seconds=current().config["OUTBOX_LEASE_SECONDS"])


def deliver(ext, note):
    """Send one claimed row and record its outcome; the outcome's status."""
    if note.channel == "mp_subscribe" and not notifications.take_quota_for(note):
        # No accept left: nothing is sent, the row says why, and nothing retries it.
        notifications.finish(note, "no_quota", "no subscribe quota for this template")
        return "no_quota"
    try:
        outcome = channels.SENDERS[note.channel](ext, note)
    except Exception as exc:  # a bug or an unexpected answer: the row retries and says why
        log.exception("notification %s: sender crashed", note.id)
        outcome = channels.Outcome("retry", f"sender error: {type(exc).__name__}", quota="return")
    if note.channel == "mp_subscribe" and note.quota_held:
        if outcome.quota == "return":
            notifications.release_quota_for(note)
        elif outcome.quota == "clear":
            notifications.clear_quota(note.recipient, note.template_id)
    if not notifications.finish(note, outcome.status, outcome.error, wait=outcome.wait):
        log.warning("notification %s: claim lost before its outcome was written", note.id)
    log.info("notification %s: %s", note.id, outcome.status, extra={"channel": note.channel, "error": outcome.error})
    return outcome.status


def send_notification(notification_id):
    """Send one outbox row if it is due and nobody else is sending it. Safe to run twice."""
    note = notifications.claim(notification_id, lease=_lease())
    if note is None:
        return "skipped"
    return deliver(current(), note)


def _lanes(batch):
    lanes = defaultdict(list)
    for note in batch:
        key = note.recipient if note.channel == "mp_subscribe" else note.channel
        if note.channel == "wecom_app":
            key = (note.channel, note.id)  # WeCom takes concurrent calls; members' limits are WeCom's
        lanes[(note.channel, key)].append(note)
    return list(lanes.values())


def digest_robot_alerts(batch, after, link=None):
    """More than `after` alert messages for one group robot in this batch (the morning after a
    holiday) go as one digest instead of a flood; fewer go one by one. → the batch to send."""
    groups = defaultdict(list)
    for note in batch:
        if note.channel == "wecom_robot" and note.payload.get("level"):
            groups[note.recipient].append(note)
    folded = {recipient: notes for recipient, notes in groups.items() if len(notes) > after}
    if not folded:
        return batch
    keep = [n for n in batch if not (n.channel == "wecom_robot" and n.recipient in folded and n.payload.get("level"))]
    for recipient, notes in folded.items():
        text = alert_routing.digest_text(recipient, [n.payload for n in notes], link)
        keep.append(notifications.digest(notes, text))
        log.info("%s alert messages for one robot sent as one digest", len(notes))
    return keep


def send_batch(batch, threads):
    """Send claimed rows, lanes in parallel; Counter of outcomes."""
    app = current_app._get_current_object()
    ext = current()

    def run_lane(lane):
        with app.app_context(), db.connection_context():
            return [deliver(ext, note) for note in lane]

    lanes = _lanes(batch)
    counts = Counter()
    # SQLite (the embedded default) has one writer: its few messages go one after another.
    if len(lanes) == 1 or threads <= 1 or not is_mysql():
        for lane in lanes:
            counts.update(deliver(ext, note) for note in lane)
        return counts
    with ThreadPoolExecutor(max_workers=min(threads, len(lanes)), thread_name_prefix="outbox") as pool:
        for statuses in pool.map(run_lane, lanes):
            counts.update(statuses)
    return counts


def deliver_outbox(now=None):
    """Claim and send batches of due rows until none is due or this run's time is up."""
    cfg = current().config
    size, threads = cfg["OUTBOX_BATCH"], cfg["OUTBOX_THREADS"]
    deadline = time.monotonic() + cfg["OUTBOX_JOB_SECONDS"]
    counts = Counter()
    while True:
        batch = notifications.claim_batch(size, now=now, lease=_lease())
        if not batch:
            break
        if len(batch) == size:
            enqueue_coalesced(notifications.DELIVER_JOB)  # more is due: another worker may help
        batch = digest_robot_alerts(batch, cfg["OUTBOX_ROBOT_DIGEST_AFTER"], cfg["DASHBOARD_ALERTS_URL"])
        counts.update(send_batch(batch, threads))
        if now is not None or time.monotonic() > deadline:
            if notifications.due_ids(now, limit=1, lease=_lease()):
                enqueue_coalesced(notifications.DELIVER_JOB)  # hand over to a fresh run
            break
    _wake_for_next_window()
    return dict(counts)


def _wake_for_next_window():
    """Rows waiting for a window (the robot's 20 a minute, a 45009 pause) or a short back-off go
    when it opens, not at the next minutely flush: a run is scheduled for then."""
    due = notifications.next_due_at()
    if due is not None and due - utcnow() <= timedelta(minutes=5):
        enqueue_at(notifications.DELIVER_JOB, due)


def flush_outbox(now=None):
    """Periodic: wake the sender for every due or stuck notification — what a Redis outage, a
    crash or a rate-limit window left behind. Returns how many rows are due."""
    due = notifications.due_ids(now, lease=_lease())
    if due:
        enqueue_coalesced(notifications.DELIVER_JOB)
    return len(due)
