"""The audit log is append-only and tamper-evident: `flask --app wsgi audit verify` finds edits and deletions."""
import pytest

from app.models import AuditEntry
from app.services import audit
from app.services.actors import Actor

MANAGER = Actor("staff", "7", "张经理")


@pytest.fixture
def chain(dbconn):
    for qty in (100, 250, 400):
        with audit.transaction(MANAGER) as log:
            log.add("progress.report", "task", 1, before={"qty_done": qty - 100}, after={"qty_done": qty}, reason="日报")
    return list(AuditEntry.select().where(AuditEntry.chain == "task:1").order_by(AuditEntry.id))


def _verify(app):
    return app.test_cli_runner().invoke(args=["audit", "verify"])


def test_an_untouched_chain_verifies(app, chain):
    result = _verify(app)
    # + the registry's entry for the chain (the chain "chains")
    assert result.exit_code == 0 and "intact: 4 entries in 2 chains" in result.output
    assert chain[1].prev_hash == chain[0].hash


@pytest.mark.parametrize("tamper", ["edit_after", "edit_actor", "delete_middle", "delete_last"])
def test_an_edited_or_deleted_entry_is_detected(app, chain, tamper):
    target = chain[1] if tamper != "delete_last" else chain[-1]
    if tamper == "edit_after":
        AuditEntry.update(after='{"qty_done":9999}').where(AuditEntry.id == target.id).execute()
    elif tamper == "edit_actor":
        AuditEntry.update(actor_label="别人").where(AuditEntry.id == target.id).execute()
    else:
        AuditEntry.delete().where(AuditEntry.id == target.id).execute()

    result = _verify(app)

    assert result.exit_code == 1
    assert audit.verify()


def test_concurrent_appends_keep_one_unbroken_chain(app, dbconn):
    import threading

    from app.extensions import db

    def append(n):
        with db.connection_context():
            for i in range(5):
                with audit.transaction(MANAGER) as log:
                    log.add("node.complete", "node", n * 10 + i, after={"state": "done"})

    threads = [threading.Thread(target=append, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert AuditEntry.select().where(AuditEntry.chain != audit.REGISTRY).count() == 30
    assert AuditEntry.select().where(AuditEntry.chain == audit.REGISTRY).count() == 30  # 30 nodes' chains
    assert audit.verify() == []
