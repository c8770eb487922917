"""A Prepared statement answers exactly as the peewee query it was built from, on every run, with
each run's own values — its SQL is only written once (app/models/prepared.py)."""
from datetime import date

from peewee import JOIN

from app.models import ProgressReport, Supplier, Task, WechatUser
from app.models.prepared import Prepared, Slot, insert_new
from tests import factories as f
from tests.sqlcount import statements


def _user_with_party(user_id):
    return (WechatUser.select(WechatUser, Supplier)
            .join(Supplier, JOIN.LEFT_OUTER, on=(WechatUser.supplier == Supplier.id))
            .where((WechatUser.id == user_id) & (WechatUser.role != "blocked")))


USER = Prepared(lambda: _user_with_party(Slot("id", WechatUser.id)))


def test_each_run_fills_in_its_own_values_and_joins_like_the_query(dbconn):
    users = [f.wechat_user(f.supplier(f"供应商{i}")) for i in range(3)]

    for user in users:
        row = USER.first(id=user.id)
        plain = _user_with_party(user.id).get()
        assert (row.id, row.openid, row.supplier.name) == (plain.id, plain.openid, plain.supplier.name)
    assert USER.first(id=10 ** 9) is None


def test_the_sql_is_written_once_and_then_only_sent(dbconn):
    user = f.wechat_user(f.supplier())
    USER.first(id=user.id)

    _, seen = statements(lambda: [USER.first(id=user.id) for _ in range(3)])

    assert len(seen) == 3 and len(set(seen)) == 1  # one text, sent three times


def test_insert_new_stores_every_field_with_its_defaults_and_sets_the_id(dbconn):
    order = f.order(f.customer(), [f.supplier()])
    task = order.tasks[0]

    row = insert_new(ProgressReport(task=task, report_date=date(2026, 5, 1), qty_done=40, note="首报"))
    other = insert_new(ProgressReport(task=task, report_date=date(2026, 5, 2), qty_done=60))

    stored = ProgressReport.get_by_id(row.id)
    assert other.id != row.id
    assert (stored.task_id, stored.report_date, stored.qty_done, stored.note, stored.revision) == (
        task.id, date(2026, 5, 1), 40, "首报", 1)
    assert stored.created_at is not None and stored.updated_at is not None


def test_an_update_changes_only_the_rows_its_values_name(dbconn):
    tasks = f.order(f.customer(), [f.supplier()]).tasks + f.order(f.customer("别家"), [f.supplier("另一家")]).tasks
    bump = Prepared(lambda: Task.update(qty_done=Slot("qty")).where(Task.id == Slot("id")))

    changed = bump.execute(id=tasks[0].id, qty=77)

    assert changed == 1
    assert [Task.get_by_id(t.id).qty_done for t in tasks] == [77, tasks[1].qty_done]
