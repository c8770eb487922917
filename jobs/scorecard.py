"""The supplier scorecard's snapshots (app/services/scorecard.py). `now`: naive UTC, or ISO text
from a queued job (China time without offset); without it, the real clock."""
from app.services import delay_engine, scorecard


def scorecard_snapshot(now=None):
    return scorecard.snapshot(delay_engine.as_of(now))
