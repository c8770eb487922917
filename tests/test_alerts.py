"""Alerts: one open alert per task and kind, its level by the domain's rule, the task's level and ETA."""
from datetime import date, timedelta

import pytest

from app.domain.errors import Invalid
from app.domain.vocabulary import delay_level
from app.models import Alert, AuditEntry, EtaRevision, Task
from app.services import alerts
from app.services.actors import Actor
from app.timeutil import china_date
from tests import factories

ENGINE = Actor.system("延期预警")


@pytest.mark.parametrize("deviation, level", [(0, "yellow"), (9.9, "yellow"), (10, "orange"), (20, "orange"),
                                              (20.1, "red"), (55, "red")])
def test_delay_level_follows_the_brief(deviation, level):
    assert delay_level(deviation) == level


def test_a_second_finding_updates_the_open_alert_instead_of_opening_another(dbconn):
    task = factories.order(factories.customer(), [factories.supplier()]).tasks.get()
    eta = china_date() + timedelta(days=25)

    first = alerts.raise_alert(ENGINE, task, "delay", "yellow", deviation_pct=8.0, days_late=5, eta_date=eta)
    second = alerts.raise_alert(ENGINE, task, "delay", "red", deviation_pct=25.0, days_late=7,
                                eta_date=eta + timedelta(days=2))

    assert second.id == first.id and Alert.select().count() == 1
    assert (second.level, second.days_late, second.status) == ("red", 7, "open")
    task = Task.get_by_id(task.id)
    assert task.alert_level == "red" and task.eta_date == eta + timedelta(days=2)
    assert [(r.old_eta, r.new_eta, r.source) for r in EtaRevision.select().order_by(EtaRevision.id)] == [
        (None, eta, "engine"), (eta, eta + timedelta(days=2), "engine")]
    domain = AuditEntry.select().where(AuditEntry.chain != "chains")  # not the chain registry's entries
    actions = [e.action for e in domain.order_by(AuditEntry.id)]
    assert actions == ["alert.open", "task.alert", "alert.update", "task.alert"]


def test_the_task_shows_its_highest_open_level(dbconn):
    task = factories.order(factories.customer(), [factories.supplier()]).tasks.get()
    alerts.raise_alert(ENGINE, task, "delay", "orange", eta_date=date(2030, 1, 1))
    alerts.raise_alert(ENGINE, task, "missing_report", "yellow")
    assert Task.get_by_id(task.id).alert_level == "orange"
    with pytest.raises(Invalid):
        alerts.raise_alert(ENGINE, task, "delay", "purple")
