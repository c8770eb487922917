"""Send outbox notifications."""
import logging

from app.extensions import current
from app.queueing import enqueue_now
from app.services import notifications
from bot import channels

log = logging.getLogger(__name__)


def send_notification(notification_id):
    """Send one outbox row if it is due and nobody else is sending it. Safe to run twice."""
    note = notifications.claim(notification_id)
    if note is None:
        return "skipped"
    if note.channel == "mp_subscribe" and not notifications.take_quota(note.recipient, note.template_id):
        # No accept left: nothing is sent, the row says why, and nothing retries it.
        notifications.finish(note, "no_quota", "no subscribe quota for this template")
        return "no_quota"
    outcome = channels.SENDERS[note.channel](current(), note)
    if note.channel == "mp_subscribe":
        if outcome.quota == "return":
            notifications.return_quota(note.recipient, note.template_id)
        elif outcome.quota == "clear":
            notifications.clear_quota(note.recipient, note.template_id)
    notifications.finish(note, outcome.status, outcome.error)
    log.info("notification %s: %s", note.id, outcome.status, extra={"channel": note.channel, "error": outcome.error})
    return outcome.status


def flush_outbox(now=None):
    """Periodic: (re)queue every due or stuck notification — what a Redis outage or a crash left behind."""
    due = notifications.due_ids(now)
    for notification_id, attempts in due:
        # One queued job per attempt; claim() keeps a duplicate from sending twice anyway.
        enqueue_now("send-notification", notification_id, job_id=f"notify-{notification_id}-{attempts}")
    return len(due)
