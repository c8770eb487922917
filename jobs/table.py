"""Every job, declared once: its name, the function that runs it, its queue and its time limit.

Services ask for a job by name after commit (`app.queueing.enqueue_after_commit("process-photo",
photo.id)`); the worker, the cron process and the embedded default's in-process runner all read
this table. Functions are named by dotted path, so a web process never imports job code. Queues are by
workload: `notify` (WeChat sends) and `media` (photos); workers list them (README).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    func: str  # dotted path of the job function
    queue: str
    timeout: int  # seconds a run may take before RQ stops it


JOBS = {
    "send-notification": Job("jobs.notify.send_notification", queue="notify", timeout=60),
    "deliver-outbox": Job("jobs.notify.deliver_outbox", queue="notify", timeout=300),
    "flush-outbox": Job("jobs.notify.flush_outbox", queue="notify", timeout=300),
    "process-photo": Job("jobs.media.process_photo", queue="media", timeout=180),
    "sweep-photos": Job("jobs.media.sweep_photos", queue="media", timeout=300),
    # The delay engine's scans (app/services/delay_engine.py); their output is outbox rows.
    "delay-scan": Job("jobs.alerts.delay_scan", queue="notify", timeout=600),
    "missing-report-scan": Job("jobs.alerts.missing_report_scan", queue="notify", timeout=600),
    "node-overdue-scan": Job("jobs.alerts.node_overdue_scan", queue="notify", timeout=600),
    "early-warning-scan": Job("jobs.alerts.early_warning_scan", queue="notify", timeout=300),
    "escalation-scan": Job("jobs.alerts.escalation_scan", queue="notify", timeout=300),
    # Supplier scorecard snapshots (app/services/scorecard.py); nothing is sent, but no other queue fits.
    "scorecard-snapshot": Job("jobs.scorecard.scorecard_snapshot", queue="notify", timeout=1800),
}
