"""The delay engine's periodic scans (queue "notify": what they produce is messages). Each takes
`now` (naive UTC, or ISO text from a queued job) so `flask jobs run <name> --now <ISO>` replays a
moment; without it, the real clock."""
from app.services import delay_engine


def delay_scan(now=None):
    return delay_engine.scan_delays(delay_engine.as_of(now))


def missing_report_scan(now=None):
    return delay_engine.scan_missing_reports(delay_engine.as_of(now))


def node_overdue_scan(now=None):
    return delay_engine.scan_overdue_nodes(delay_engine.as_of(now))


def early_warning_scan(now=None):
    return delay_engine.scan_early_warnings(delay_engine.as_of(now))


def escalation_scan(now=None):
    return delay_engine.scan_escalations(delay_engine.as_of(now))
