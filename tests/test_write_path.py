"""The write path at scale: a new report in few statements, and one audit chain per order instead
of one global head, each chain intact under concurrent reports and each checked by `audit verify`."""
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest

from app import create_app
from app.extensions import db
from app.migrate import runner
from app.models import AuditChain, AuditEntry, ProgressReport, Task
from app.services import audit
from app.services.actors import Actor
from app.timeutil import china_date
from tests import factories as f
from tests.helpers import BACKENDS, SECRET, insert_row, ready_photo
from tests.sqlcount import sent

MANAGER = Actor("staff", "7", "张经理")


def _report(client, auth, task_id, day, qty, client_id=None):
    return client.post(f"/mp/v1/tasks/{task_id}/reports", headers=auth, json={
        "client_id": client_id or str(uuid.uuid4()), "report_date": day.isoformat(), "qty_done": qty})


@pytest.fixture
def running(app):
    """An order in production whose chain exists (yesterday's report), its task and the supplier's
    auth. The test itself holds no connection: each request takes one from the pool and gives it
    back, as in production."""
    with app.app_context(), db.connection_context():
        sup = f.supplier()
        order = f.order(f.customer(), [sup], qty=1000)
        task = order.tasks[0]
        auth = f.bearer(f.wechat_user(sup))
    client = app.test_client()
    assert _report(client, auth, task.id, china_date() - timedelta(days=1), 10).status_code == 201
    return client, task, auth


def test_a_new_report_costs_at_most_9_statements_and_the_pool_sends_no_rollback(app, running):
    client, task, auth = running

    res, seen = sent(lambda: _report(client, auth, task.id, china_date(), 20))

    assert res.status_code == 201, res.json
    # token, BEGIN, task lock (= ownership, with the latest report's date and figure and the order
    # chain's head as last seen), INSERT, task figure, head move, entry, stored answer (its unique
    # index is the retry check), COMMIT — and no ROLLBACK when the pool takes the connection back.
    assert len(seen) <= 9, "\n".join(seen)
    assert not [s for s in seen if s.startswith("SELECT") and "progress_report" in s], seen
    assert not [s for s in seen if s.startswith(("ROLLBACK", "SAVEPOINT"))], seen


def test_a_chains_first_entry_registers_it_in_three_more_statements(app):
    """The first report of an order starts its chain: the head's INSERT and re-read, and the
    registry head's lock (its entry and head go in the same INSERT and UPDATE as the chain's)."""
    with app.app_context(), db.connection_context():
        sup = f.supplier()
        task = f.order(f.customer(), [sup], qty=1000).tasks[0]
        auth = f.bearer(f.wechat_user(sup))
    client = app.test_client()
    assert _report(client, auth, task.id, china_date() - timedelta(days=1), 10).status_code == 201  # as `running`

    with app.app_context(), db.connection_context():
        task = f.order(f.customer(), [sup], qty=1000).tasks[0]
    res, seen = sent(lambda: _report(client, auth, task.id, china_date(), 20))

    assert res.status_code == 201, res.json
    # 9, + the day read (the task has no report yet) and the head read the long way (none seen), + 3
    assert len(seen) <= 9 + 2 + 3, "\n".join(seen)
    with app.app_context(), db.connection_context():
        registered = [e.object_id for e in AuditEntry.select().where(AuditEntry.chain == audit.REGISTRY)]
        assert registered[-1] == f"order:{task.order_id}" and len(registered) == 2


def _pings(call):
    """(what `call()` returns, how many pings PyMySQL sent meanwhile)."""
    import pymysql.connections

    original, seen = pymysql.connections.Connection.ping, []

    def spy(self, *args, **kwargs):
        seen.append(self.thread_id())
        return original(self, *args, **kwargs)

    pymysql.connections.Connection.ping = spy
    try:
        return call(), len(seen)
    finally:
        pymysql.connections.Connection.ping = original


def test_the_pool_lends_a_connection_just_given_back_without_a_ping(app, running):
    client, task, auth = running
    if db.obj.__class__.__name__ != "MySQLPool":
        pytest.skip("the MySQL pool's check")

    res, pings = _pings(lambda: _report(client, auth, task.id, china_date(), 20))

    assert res.status_code == 201 and pings == 0


@pytest.mark.parametrize("rested", [False, True], ids=["just-given-back", "rested"])
def test_a_connection_the_server_closed_is_replaced(app, running, rested):
    """A connection the server dropped (restart, KILL, wait_timeout) is pinged, discarded and the
    request gets a fresh one — also one given back a moment ago, which is otherwise lent unpinged."""
    import time

    import pymysql

    client, task, auth = running
    if db.obj.__class__.__name__ != "MySQLPool":
        pytest.skip("the MySQL pool's check")
    pooled = [conn for _, _, conn in db.obj._connections]
    assert pooled
    admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    for conn in pooled:
        admin.cursor().execute(f"KILL {conn.thread_id()}")
        if rested:
            conn.wx_returned_at -= db.obj.PING_AFTER_IDLE_SECONDS
    admin.close()
    time.sleep(0.1)  # the server's goodbye reaches the sockets

    res, pings = _pings(lambda: _report(client, auth, task.id, china_date(), 20))

    assert res.status_code == 201, res.json
    assert pings >= 1


def test_an_amendment_and_a_retry_stay_cheap(app, running):
    client, task, auth = running
    same = str(uuid.uuid4())
    assert _report(client, auth, task.id, china_date(), 20).status_code == 201

    amended, amend_sql = sent(lambda: _report(client, auth, task.id, china_date(), 25, same))
    retried, retry_sql = sent(lambda: _report(client, auth, task.id, china_date(), 25, same))

    assert amended.status_code == 201 and amended.json["revision"] == 2
    assert retried.status_code == 200 and retried.json == amended.json
    assert len(amend_sql) <= 10, "\n".join(amend_sql)  # + the day's neighbours; no photos to read
    # A first send looks nothing up; a retry pays for it: its transaction loses on the stored
    # answer's unique index and rolls back, then the stored answer is read.
    assert not any("client_request" in s and s.startswith("SELECT") for s in amend_sql), amend_sql
    assert retry_sql[-2] == "ROLLBACK" and "client_request" in retry_sql[-1], "\n".join(retry_sql)
    with app.app_context(), db.connection_context():
        assert ProgressReport.get(ProgressReport.task == task.id, ProgressReport.report_date == china_date()).revision == 2
        assert AuditEntry.select().where(AuditEntry.object_id == str(task.id)).count() == 3  # the retry left none


def test_a_new_days_report_is_checked_against_the_latest_without_reading_it(app, running):
    """The task row carries its latest report's date and figure: a later day's report is checked
    against them (not below the latest), with no read of the reports."""
    client, task, auth = running  # yesterday: 10
    assert _report(client, auth, task.id, china_date() - timedelta(days=3), 4).status_code == 201

    lower, seen = sent(lambda: _report(client, auth, task.id, china_date(), 9))
    same = _report(client, auth, task.id, china_date(), 10)

    assert lower.status_code == 422 and lower.json["error"]["code"] == "qty_decreased", lower.json
    assert (china_date() - timedelta(days=1)).isoformat() in lower.json["error"]["message"]
    assert not [s for s in seen if "progress_report" in s], seen
    assert same.status_code == 201
    # An earlier day than the latest still reads its neighbours: not above the later day's 10.
    between = _report(client, auth, task.id, china_date() - timedelta(days=2), 11)
    assert between.status_code == 422 and between.json["error"]["code"] == "qty_above_later_report", between.json


def test_an_amendment_reads_the_days_photos_only_when_the_day_has_some(app, running):
    client, task, auth = running  # yesterday: 10, no photo
    today = china_date()
    with app.app_context(), db.connection_context():
        first, second, third = (ready_photo(Task.get_by_id(task.id).supplier) for _ in range(3))

    def send(day, qty, photo_ids=()):
        return client.post(f"/mp/v1/tasks/{task.id}/reports", headers=auth, json={
            "client_id": str(uuid.uuid4()), "report_date": day.isoformat(), "qty_done": qty,
            "photo_ids": list(photo_ids)})

    assert send(today, 20, [first.id]).status_code == 201
    with_photos, read = sent(lambda: send(today, 25, [second.id]))
    bare, not_read = sent(lambda: send(today - timedelta(days=1), 12))
    added, not_read_either = sent(lambda: send(today - timedelta(days=1), 13, [third.id]))

    def photo_reads(seen):  # the day's photos read back by their report (attaching reads the new ones by id)
        return [s for s in seen if s.startswith("SELECT") and ("report_id` IN" in s or '"report_id" IN' in s)]

    assert [p["id"] for p in with_photos.json["photos"]] == [first.id, second.id]  # the day's and the new one
    assert photo_reads(read)
    assert bare.status_code == 201 and bare.json["photos"] == [] and not photo_reads(not_read), not_read
    assert [p["id"] for p in added.json["photos"]] == [third.id] and not photo_reads(not_read_either)


def test_a_new_report_answers_its_photos_in_the_order_sent(app, running):
    client, task, auth = running
    with app.app_context(), db.connection_context():
        first, second = (ready_photo(Task.get_by_id(task.id).supplier) for _ in range(2))

    res = client.post(f"/mp/v1/tasks/{task.id}/reports", headers=auth, json={
        "client_id": str(uuid.uuid4()), "report_date": china_date().isoformat(), "qty_done": 20,
        "photo_ids": [second.id, first.id]})

    assert res.status_code == 201, res.json
    assert [p["id"] for p in res.json["photos"]] == [second.id, first.id]


def test_a_node_completion_reads_its_open_tasks_and_their_parts_once(app, running):
    client, task, auth = running

    res, seen = sent(lambda: client.post(f"/mp/v1/tasks/{task.id}/nodes/materials_ready/complete", headers=auth,
                                         json={"client_id": str(uuid.uuid4())}))

    assert res.status_code == 201, res.json
    assert res.json["state"] == "done"
    # token, BEGIN, task lock, node lock, order state, open tasks with their parts, the part's
    # INSERT, the node's UPDATE, (the node is done: the order and its subscribers), head, entries,
    # stored answer, COMMIT
    assert len(seen) <= 14, "\n".join(seen)
    assert len([s for s in seen if "node_completion" in s]) == 2, seen  # one read, one write


def test_a_report_goes_to_its_orders_chain(app, running):
    client, task, auth = running
    with app.app_context(), db.connection_context():
        entries = list(AuditEntry.select().where(AuditEntry.object_id == str(task.id)))
        assert [e.chain for e in entries] == [f"order:{task.order_id}"]
        head = AuditChain.get(AuditChain.key == f"order:{task.order_id}")
        assert (head.entries, head.last_hash) == (1, entries[0].hash)


# --- tampering, chain by chain ------------------------------------------------------------------

@pytest.fixture
def chains(dbconn):
    """Three chains of three entries: two orders', and a supplier's (no order)."""
    for qty in (100, 250, 400):
        for order_id in (1, 2):
            with audit.transaction(MANAGER, chain=audit.order_chain(order_id)) as log:
                log.add("progress.report", "task", order_id * 10, after={"qty_done": qty}, reason="日报")
        with audit.transaction(MANAGER) as log:
            log.add("supplier.robot", "supplier", 5, after={"robot": qty})
    by_chain = {}
    for entry in AuditEntry.select().order_by(AuditEntry.id):
        by_chain.setdefault(entry.chain, []).append(entry)
    # Each chain's first entry registered it: the registry is a chain too, tampered with below as well.
    assert sorted(by_chain) == ["chains", "order:1", "order:2", "supplier:5"]
    assert [e.object_id for e in by_chain["chains"]] == ["order:1", "order:2", "supplier:5"]
    return by_chain


def test_untouched_chains_verify(app, chains):
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and "intact: 12 entries in 4 chains" in result.output
    for entries in chains.values():
        assert entries[0].prev_hash == audit.GENESIS
        assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]


@pytest.mark.parametrize("tamper", ["edit_middle", "delete_middle", "delete_last", "delete_first"])
def test_an_edit_or_deletion_is_found_in_every_chain(app, chains, tamper):
    for entries in chains.values():
        target = {"edit_middle": entries[1], "delete_middle": entries[1], "delete_last": entries[-1],
                  "delete_first": entries[0]}[tamper]
        if tamper == "edit_middle":
            AuditEntry.update(after=json.dumps({"qty_done": 9999})).where(AuditEntry.id == target.id).execute()
        else:
            AuditEntry.delete().where(AuditEntry.id == target.id).execute()

    problems = audit.verify()
    result = app.test_cli_runner().invoke(args=["audit", "verify"])

    assert result.exit_code == 1
    for key in chains:
        assert [p for p in problems if f"chain {key}" in p], (key, problems)


def test_one_tampered_chain_is_named_and_the_others_pass(app, chains):
    AuditEntry.delete().where(AuditEntry.id == chains["order:2"][-1].id).execute()
    problems = audit.verify()
    assert problems and all("order:2" in p for p in problems), problems


def test_a_deleted_chain_head_is_found(app, chains):
    AuditChain.delete().where(AuditChain.key == "order:1").execute()
    assert [p for p in audit.verify() if "chain order:1" in p and "no head" in p]


def test_a_transaction_writing_to_two_chains_moves_both_heads(app, dbconn):
    with audit.transaction(MANAGER) as log:
        log.add("order.state", "order", 1, after={"state": "on_hold"})
        log.add("task.state", "task", 11, after={"state": "on_hold"}, chain=audit.order_chain(1))
        log.add("supplier.robot", "supplier", 5, after={"robot": True})
    heads = {h.key: h.entries for h in AuditChain.select()}
    assert heads == {"order:1": 2, "supplier:5": 1, "chains": 2}
    assert audit.verify() == []


def test_starting_many_chains_in_one_transaction_costs_what_starting_two_does(app, dbconn):
    """An import of many orders: their chains are registered in the same INSERT and UPDATE, behind
    one lock of the registry's head, whatever their number."""
    def start(first, count):
        with audit.transaction(MANAGER) as log:
            for order_id in range(first, first + count):
                log.add("order.create", "order", order_id, after={"external_no": f"ERP-{order_id}"})

    start(1, 1)  # the registry's head exists from here on
    _, two = sent(lambda: start(100, 2))
    _, many = sent(lambda: start(200, 40))

    assert len(many) == len(two), "\n".join(many)
    registered = [e.object_id for e in AuditEntry.select().where(AuditEntry.chain == audit.REGISTRY)]
    assert len(registered) == 1 + 2 + 40 and registered[-1] == "order:239"
    assert AuditChain.get(AuditChain.key == audit.REGISTRY).entries == 43
    assert audit.verify() == []


# --- whole chains: the registry ---------------------------------------------------------------------

def test_a_whole_deleted_chain_is_found(app, chains):
    """Its entries and its head gone: nothing of the chain is left, but the registry names it."""
    AuditEntry.delete().where(AuditEntry.chain == "order:1").execute()
    AuditChain.delete().where(AuditChain.key == "order:1").execute()
    problems = audit.verify()
    assert problems and all("chain order:1" in p for p in problems), problems
    assert "whole chain was deleted" in problems[0]


def test_an_emptied_chain_whose_head_was_reset_is_found(app, chains):
    AuditEntry.delete().where(AuditEntry.chain == "supplier:5").execute()
    AuditChain.update(entries=0, last_hash=audit.GENESIS).where(AuditChain.key == "supplier:5").execute()
    problems = audit.verify()
    assert problems and all("chain supplier:5" in p for p in problems), problems


@pytest.mark.parametrize("tamper", ["delete_entry", "delete_last", "delete_head", "delete_all"])
def test_tampering_with_the_registry_is_found(app, chains, tamper):
    registry = chains["chains"]
    if tamper == "delete_entry":  # order:2 unregistered, so that its whole deletion would go unseen
        AuditEntry.delete().where(AuditEntry.id == registry[1].id).execute()
    elif tamper == "delete_last":
        AuditEntry.delete().where(AuditEntry.id == registry[-1].id).execute()
    elif tamper == "delete_head":
        AuditChain.delete().where(AuditChain.key == "chains").execute()
    else:  # the registry's entries and head: the chains it named are then unregistered
        AuditEntry.delete().where(AuditEntry.chain == "chains").execute()
        AuditChain.delete().where(AuditChain.key == "chains").execute()

    problems = audit.verify()

    assert problems, tamper
    if tamper == "delete_entry":
        assert [p for p in problems if "chain chains" in p and "does not follow" in p], problems
        assert [p for p in problems if "chain order:2" in p and "not in the chain registry" in p], problems
    elif tamper != "delete_all":
        assert all("chain chains" in p or "chain supplier:5" in p for p in problems), problems
    else:
        assert {p.split(":")[0] for p in problems} >= {"chain order", "chain supplier"}, problems


def test_a_chain_outside_the_registry_is_named_and_audit_register_adds_it(app, chains):
    """A chain the previous release started after the migration ran (between upgrade and restart)
    is not registered: verify names it, and `audit register` registers it."""
    registry = chains["chains"]
    AuditEntry.delete().where(AuditEntry.id == registry[-1].id).execute()  # supplier:5 never registered
    AuditChain.update(entries=2, last_hash=registry[1].hash).where(AuditChain.key == "chains").execute()
    assert audit.verify() == ["chain supplier:5: 3 entries but not in the chain registry "
                              "(started by a release before migration 0014, or written behind the log's back)"]

    result = app.test_cli_runner().invoke(args=["audit", "register"])

    assert result.exit_code == 0 and "registered 1 chain" in result.output, result.output
    assert audit.verify() == []
    assert app.test_cli_runner().invoke(args=["audit", "register"]).output.strip() == "registered 0 chains"


# --- concurrency ----------------------------------------------------------------------------------

def _concurrently(app, calls, workers=12):
    def run(call):
        with app.app_context():
            return call(app.test_client())

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, calls))


def test_50_concurrent_reports_on_one_task_keep_its_chain_intact(app, running):
    _, task, auth = running
    today = china_date()
    calls = [lambda c, q=qty: _report(c, auth, task.id, today, q) for qty in range(100, 150)]

    answers = _concurrently(app, calls)

    assert sorted(r.status_code for r in answers) == [201] * 50, {r.status_code: r.json for r in answers}
    with app.app_context(), db.connection_context():
        row = ProgressReport.get((ProgressReport.task == task.id) & (ProgressReport.report_date == today))
        assert row.revision == 50
        assert Task.get_by_id(task.id).qty_done == row.qty_done
        chain = list(AuditEntry.select().where(AuditEntry.chain == f"order:{task.order_id}"))
        assert len(chain) == 51  # yesterday's report, today's first, 49 amendments
        assert audit.verify() == []


def test_50_concurrent_reports_on_tasks_of_different_orders_keep_every_chain_intact(app):
    with app.app_context(), db.connection_context():
        sup = f.supplier()
        cust = f.customer()
        tasks = [f.order(cust, [sup], qty=1000).tasks[0] for _ in range(50)]
        auth = f.bearer(f.wechat_user(sup))
    today = china_date()
    calls = [lambda c, t=t: _report(c, auth, t.id, today, 30) for t in tasks]

    answers = _concurrently(app, calls)

    assert [r.status_code for r in answers] == [201] * 50, {r.status_code: r.json for r in answers}
    with app.app_context(), db.connection_context():
        heads = {h.key: h.entries for h in AuditChain.select()}
        # 50 chains started at once, each registered once, the registry's head locked last (no deadlock).
        assert heads == {f"order:{t.order_id}": 1 for t in tasks} | {"chains": 50}
        registered = [e.object_id for e in AuditEntry.select().where(AuditEntry.chain == "chains")]
        assert sorted(registered) == sorted(f"order:{t.order_id}" for t in tasks)
        assert ProgressReport.select().count() == 50
        assert audit.verify() == []


def test_50_concurrent_reports_on_five_tasks_of_one_order_keep_its_chain_intact(app):
    """Reports on different tasks of one order hold different task locks and meet at the order's
    head: one that saw the head before another moved it locks it, reads it again and follows."""
    with app.app_context(), db.connection_context():
        sup = f.supplier()
        order = f.order(f.customer(), [sup] * 5, qty=1000)
        tasks = list(order.tasks)
        auth = f.bearer(f.wechat_user(sup))
        with audit.transaction(MANAGER, chain=audit.order_chain(order.id)) as log:
            log.add("order.confirm", "order", order.id)  # the chain exists, as once confirmed
    today = china_date()
    calls = [lambda c, t=t, q=q: _report(c, auth, t.id, today, q) for q in range(100, 110) for t in tasks]

    answers = _concurrently(app, calls)

    assert sorted(r.status_code for r in answers) == [201] * 50, {r.status_code: r.json for r in answers}
    with app.app_context(), db.connection_context():
        head = AuditChain.get(AuditChain.key == f"order:{order.id}")
        entries = list(AuditEntry.select().where(AuditEntry.chain == head.key).order_by(AuditEntry.id))
        assert head.entries == len(entries) == 51 and head.last_hash == entries[-1].hash
        assert [r.revision for r in ProgressReport.select()] == [10] * 5
        assert audit.verify() == []


def test_an_append_to_a_head_seen_before_another_moved_it_follows_the_new_head(app, dbconn):
    def append(seen=None, qty=0):
        with audit.transaction(MANAGER, chain=audit.order_chain(1)) as log:
            log.saw_head(seen)
            log.add("progress.report", "task", 10, after={"qty_done": qty})

    append()
    seen = AuditChain.get(AuditChain.key == "order:1").last_hash
    _, fresh = sent(lambda: append(seen, 1))  # nobody moved it: no locking read of the head
    stale = seen
    append(qty=2)
    _, moved = sent(lambda: append(stale, 3))  # moved since: the head is locked and read again

    assert not [s for s in fresh if s.startswith("SELECT") and "audit_chain" in s], fresh
    assert [s for s in moved if s.startswith("SELECT") and "audit_chain" in s], moved
    entries = list(AuditEntry.select().where(AuditEntry.chain == "order:1").order_by(AuditEntry.id))
    assert [json.loads(e.after)["qty_done"] for e in entries] == [0, 1, 2, 3]
    assert all(e.prev_hash == p.hash for p, e in zip(entries, entries[1:], strict=False))
    assert AuditChain.get(AuditChain.key == "order:1").entries == 4
    assert audit.verify() == []


def test_transactions_starting_the_same_chain_at_once_register_it_once(app, dbconn):
    """Only the transaction that appends the chain's first entry registers it, whichever inserted
    its head; the others wait for the head, then for nothing of the registry's."""
    start = threading.Barrier(12)

    def append(n):
        with app.app_context(), db.connection_context():
            start.wait()
            with audit.transaction(MANAGER, chain=audit.order_chain(77)) as log:
                log.add("node.complete", "node", 700 + n, after={"state": "done"})

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(append, range(12)))  # re-raises a deadlock, if any

    assert [e.object_id for e in AuditEntry.select().where(AuditEntry.chain == audit.REGISTRY)] == ["order:77"]
    assert AuditChain.get(AuditChain.key == "order:77").entries == 12
    assert audit.verify() == []


# --- migrations 0011 and 0014 ----------------------------------------------------------------------

def _legacy_entries(count=3):
    """`count` entries chained under the single head, as before 0011 (the head says so). → the last hash."""
    p, prev, at = db.param, audit.GENESIS, datetime(2026, 5, 1, 8, 30)
    for n in range(count):
        fields = {"at": at.isoformat(), "actor": ["staff", "7", "张经理"], "action": "order.state",
                  "object": ["order", str(n)], "reason": None, "before": None, "after": '{"state":"confirmed"}'}
        digest = audit._hash(prev, fields)
        db.execute_sql(
            "INSERT INTO audit_entry (created_at, actor_type, actor_id, actor_label, action, object_type, object_id, "
            f"after, prev_hash, hash) VALUES ({', '.join([p] * 10)})",
            (at, "staff", "7", "张经理", "order.state", "order", str(n), '{"state":"confirmed"}', prev, digest))
        prev = digest
    db.execute_sql(f"INSERT INTO audit_head (id, created_at, entries, last_hash) VALUES (1, {p}, {p}, {p})", (at, count, prev))
    return prev


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_0011_keeps_the_entries_written_before_it_as_the_legacy_chain(fresh_database, backend_name):
    """Entries chained under the single head before 0011 stay as they are (not re-hashed): the
    chain "legacy", whose head is the old one; it still verifies, and tampering with it shows."""
    create_app({"APP_ENV": "test", "SECRET_KEY": SECRET, "DATABASE_URL": fresh_database(backend_name)})
    with db.connection_context():
        runner().up(target="0010_materials")  # the last migration before 0011
        prev = _legacy_entries()
        assert runner().up(target="0011_audit_chains") == ["0011_audit_chains"]

        legacy = AuditChain.get(AuditChain.key == "legacy")
        assert (legacy.entries, legacy.last_hash) == (3, prev)
        assert {e.chain for e in AuditEntry.select()} == {"legacy"}
        runner().up()  # and the later ones (0014 registers the chain)
        assert audit.verify() == []
        AuditEntry.delete().where(AuditEntry.hash == prev).execute()
        assert [p for p in audit.verify() if "chain legacy" in p and "its head says" in p]


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_0014_registers_the_chains_written_before_it(fresh_database, backend_name):
    """Chains the previous release started (and the legacy one) get one registry entry each, so
    deleting one whole is found from then on; an empty head (never appended to) is left for its
    first entry to register; new chains are registered after them."""
    create_app({"APP_ENV": "test", "SECRET_KEY": SECRET, "DATABASE_URL": fresh_database(backend_name)})
    with db.connection_context():
        runner().up(target="0010_materials")
        _legacy_entries()
        runner().up(target="0013_task_rejected")  # the last migration before 0014
        at = datetime(2026, 11, 2, 9, 0)
        for key, task in (("order:1", "11"), ("supplier:5", "51")):  # as the previous release appended them
            prev = audit.GENESIS
            for qty in (10, 20):
                fields = {"at": at.isoformat(), "actor": ["staff", "7", "张经理"], "action": "progress.report",
                          "object": ["task", task], "reason": None, "before": None, "after": f'{{"qty_done":{qty}}}'}
                digest = audit._hash(prev, fields)
                insert_row("audit_entry", chain=key, created_at=at, actor_type="staff", actor_id="7",
                           actor_label="张经理", action="progress.report", object_type="task", object_id=task,
                           after=f'{{"qty_done":{qty}}}', prev_hash=prev, hash=digest)
                prev = digest
            insert_row("audit_chain", key=key, entries=2, last_hash=prev, created_at=at)
        insert_row("audit_chain", key="order:2", entries=0, last_hash=audit.GENESIS, created_at=at)

        assert runner().up(target="0014_audit_registry") == ["0014_audit_registry"]

        assert audit.verify() == []
        registry = list(AuditEntry.select().where(AuditEntry.chain == "chains").order_by(AuditEntry.id))
        assert [e.object_id for e in registry] == ["legacy", "order:1", "supplier:5"]
        assert AuditChain.get(AuditChain.key == "chains").entries == 3
        with audit.transaction(MANAGER, chain="order:2") as log:  # the empty head's first entry registers it
            log.add("progress.report", "task", 21, after={"qty_done": 5})
        with audit.transaction(MANAGER, chain="order:1") as log:  # an existing chain: nothing to register
            log.add("progress.report", "task", 11, after={"qty_done": 30})
        assert [e.object_id for e in AuditEntry.select().where(AuditEntry.chain == "chains")] == [
            "legacy", "order:1", "supplier:5", "order:2"]
        assert audit.verify() == []

        AuditEntry.delete().where(AuditEntry.chain == "supplier:5").execute()
        AuditChain.delete().where(AuditChain.key == "supplier:5").execute()
        assert [p for p in audit.verify() if "chain supplier:5" in p and "whole chain was deleted" in p]
