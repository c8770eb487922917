"""Jobs run after commit only — through a real RQ worker on Redis, or in process in the embedded default."""
import pytest

from app.extensions import db
from app.models import Notification
from app.queueing import enqueue_after_commit, get_queue
from app.services import notifications
from jobs.notify import flush_outbox


class Boom(Exception):
    pass


def _pending_note():
    return Notification.create(channel="wecom_app", recipient="zhangsan", payload={"content": "**延期提醒**"})


def _queued(backend):
    return len(get_queue("notify")) if backend["name"] == "mysql" else 0


def _drain(backend, run_worker):
    """Let whatever was queued run: a real worker on Redis; nothing to do in process."""
    if backend["name"] == "mysql":
        run_worker()


def test_a_job_enqueued_in_a_rolled_back_transaction_never_runs(app, dbconn, backend, request):
    note = _pending_note()

    with pytest.raises(Boom), db.atomic():
        enqueue_after_commit("send-notification", note.id)
        raise Boom()

    assert _queued(backend) == 0
    if backend["name"] == "mysql":
        request.getfixturevalue("run_worker")()
    note = Notification.get_by_id(note.id)
    assert (note.status, note.attempts) == ("pending", 0)


def test_a_job_enqueued_in_a_committed_transaction_runs_after_commit(app, dbconn, backend, request):
    note = _pending_note()

    with db.atomic():
        enqueue_after_commit("send-notification", note.id)
        # Not before the commit: a worker must never see uncommitted rows.
        assert _queued(backend) == 0
        assert Notification.get_by_id(note.id).status == "pending"

    if backend["name"] == "mysql":
        assert _queued(backend) == 1
        output = request.getfixturevalue("run_worker")()
        assert "send_notification" in output
    note = Notification.get_by_id(note.id)
    # No WeCom credentials: the message is recorded instead of sent.
    assert (note.status, note.attempts) == ("recorded", 1)


def test_recording_a_notification_in_a_rolled_back_transaction_leaves_nothing(app, dbconn, backend):
    with pytest.raises(Boom), db.atomic():
        notifications.record("wecom_app", "zhangsan", {"content": "x"}, dedup_key="k-1")
        raise Boom()
    assert Notification.select().count() == 0
    assert _queued(backend) == 0


def test_the_outbox_flush_sends_what_a_redis_outage_left_pending(make_app, dbconn, backend, request):
    if backend["name"] != "mysql":
        pytest.skip("the embedded default has no Redis to lose")
    broken = make_app(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    with broken.app_context(), db.connection_context(), db.atomic():
        note = notifications.record("wecom_app", "zhangsan", {"content": "质检不合格"})
    # The commit succeeded; the enqueue failed and was logged, not raised.
    assert Notification.get_by_id(note.id).status == "pending"

    app = make_app()
    with app.app_context():
        assert flush_outbox() == 1
        assert flush_outbox() == 1  # still due until a worker runs it; the job id keeps the queue single
        assert len(get_queue("notify")) == 1
    request.getfixturevalue("run_worker")()
    assert Notification.get_by_id(note.id).status == "recorded"


def test_jobs_run_command_runs_a_periodic_job_as_of_a_time(app, dbconn):
    _pending_note()
    from jobs.cli import register

    register(app)
    runner = app.test_cli_runner()

    early = runner.invoke(args=["jobs", "run", "flush-outbox", "--now", "2000-01-01T08:00:00+08:00"])
    assert early.exit_code == 0, early.output
    assert "flush-outbox: 0" in early.output  # nothing was due in 2000

    now = runner.invoke(args=["jobs", "run", "flush-outbox"])
    assert "flush-outbox: 1" in now.output
