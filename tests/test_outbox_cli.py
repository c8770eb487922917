"""`flask --app wsgi outbox …`: what an operator sees of the outbox, and resending one row."""
from datetime import timedelta

from app.extensions import db
from app.models import Notification
from app.timeutil import utcnow
from tests.helpers import wechat_settings


def _rows():
    """What failures and crashes leave behind, next to rows that are fine."""
    now = utcnow()
    return {
        "failed": Notification.create(channel="wecom_app", recipient="zhangsan", payload={"content": "**延期**"},
                                      status="failed", attempts=1, next_attempt_at=now - timedelta(hours=1),
                                      last_error="wecom 81013: no such WeCom user: zhangsan"),
        "dead_sender": Notification.create(channel="mp_subscribe", recipient="o-customer-123456", template_id="T",
                                           payload={"data": {}}, status="sending", attempts=1,
                                           next_attempt_at=now - timedelta(minutes=30)),
        "not_woken": Notification.create(channel="wecom_robot", recipient="robot", payload={"content": "x"},
                                         next_attempt_at=now - timedelta(minutes=20)),
        "sending": Notification.create(channel="wecom_app", recipient="lisi", payload={"content": "y"},
                                       status="sending", attempts=1, next_attempt_at=now),
        "sent": Notification.create(channel="wecom_app", recipient="lisi", payload={"content": "z"}, status="sent",
                                    attempts=1, sent_at=now),
        "due_now": Notification.create(channel="wecom_app", recipient="lisi", payload={"content": "w"},
                                       next_attempt_at=now + timedelta(minutes=1)),
    }


def _ids(output):
    return [int(line.split()[0]) for line in output.splitlines() if line.strip() and line.split()[0].isdigit()]


def test_outbox_list_shows_failed_rows_with_their_reason_and_stuck_rows(app, dbconn):
    rows = _rows()
    cli = app.test_cli_runner()

    failed = cli.invoke(args=["outbox", "list", "--failed"])
    assert failed.exit_code == 0, failed.output
    assert _ids(failed.output) == [rows["failed"].id]
    assert "wecom 81013: no such WeCom user: zhangsan" in failed.output

    stuck = cli.invoke(args=["outbox", "list", "--stuck"])
    assert stuck.exit_code == 0, stuck.output
    assert _ids(stuck.output) == [rows["dead_sender"].id, rows["not_woken"].id]
    assert "o-customer-123456" not in stuck.output  # openids are shortened

    counts = cli.invoke(args=["outbox", "list"])
    assert counts.exit_code == 0
    assert "wecom_app    failed    1" in counts.output and "wecom_app    sending   1" in counts.output


def test_outbox_resend_sends_a_failed_row_again(wechat_app, wechat_fake, backend, request):
    with wechat_app.app_context(), db.connection_context():
        note = Notification.create(channel="wecom_app", recipient="zhangsan", payload={"content": "**延期提醒**"},
                                   status="failed", attempts=7, last_error="wechat -1: system error")
        result = wechat_app.test_cli_runner().invoke(args=["outbox", "resend", str(note.id)])
        assert result.exit_code == 0, result.output
        assert f"notification {note.id} (wecom_app, was failed) queued again" in result.output
        if backend["name"] == "mysql":
            # A worker sends it (the embedded default has already sent it in process).
            request.getfixturevalue("run_worker")({k: str(v) for k, v in wechat_settings(wechat_fake).items()})
        row = Notification.get_by_id(note.id)
        assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert [m["delivered_to"] for m in wechat_fake.wecom_messages] == [["zhangsan"]]


def test_outbox_resend_refuses_a_row_being_sent_and_a_missing_one_in_one_line(app, dbconn):
    rows = _rows()
    cli = app.test_cli_runner()

    busy = cli.invoke(args=["outbox", "resend", str(rows["sending"].id)])
    assert busy.exit_code == 1 and "is being sent now" in busy.output and "Traceback" not in busy.output
    assert Notification.get_by_id(rows["sending"].id).status == "sending"

    missing = cli.invoke(args=["outbox", "resend", "999999"])
    assert missing.exit_code == 1 and "no notification 999999" in missing.output
