"""A supplier's quality figures for a period: first-pass yield counts each batch's first QC
result only (a failed batch that passes after rework is a failure; a later failure of a batch
that passed first is not); acceptance, rework and scrap rates; nonconformances and their
closure time; self-checks never count."""
import uuid
from datetime import timedelta

import pytest

from app.models import Inspection, Nonconformance
from app.timeutil import china_date, utcnow
from tests.helpers import ready_photo
from tests.quality_helpers import inspect, make_plant, new_batch, ship


@pytest.fixture
def plant(app, dbconn, client):
    return make_plant(app, client)


def figures(d, start=None, end=None, supplier_id=None):
    today = china_date()
    start, end = start or today, end or today
    res = d.manager.get(f"/api/v1/suppliers/{supplier_id or d.supplier.id}/quality?from={start}&to={end}")
    assert res.status_code == 200, res.json
    return res.json


def test_first_pass_yield_counts_the_first_qc_result_of_each_batch_only(plant):
    d = plant
    reworked, clean, later_failed, self_checked, old = (new_batch(d, 100) for _ in range(5))

    inspect(d, reworked["id"], 2.5)  # first: fail
    d.qc.post(f"/api/v1/batches/{reworked['id']}/disposition", json={"disposition": "rework", "reason": "返工"})
    assert inspect(d, reworked["id"], 2.0).json["result"] == "pass"  # released, but not first time

    assert inspect(d, clean["id"], 2.0).json["result"] == "pass"
    assert inspect(d, later_failed["id"], 2.0).json["result"] == "pass"  # first: pass …
    assert inspect(d, later_failed["id"], 2.6, kind="patrol").json["result"] == "fail"  # … a later failure

    res = d.client.post(f"/mp/v1/batches/{self_checked['id']}/self-checks", headers=d.sup, json={
        "client_id": str(uuid.uuid4()), "kind": "patrol", "sample_qty": 5,
        "readings": [{"item_id": d.items["板厚"], "value": 2.0},
                     {"item_id": d.items["外观"], "passed": False, "photo_ids": [_supplier_photo(d)]}]})
    assert res.status_code == 201, res.json  # a failed self-check: no QC result at all

    # A batch first inspected (and failed) 40 days ago, passed today: its first result is not in this period.
    first_old = inspect(d, old["id"], 2.5)
    long_ago = utcnow() - timedelta(days=40)
    Inspection.update(inspected_at=long_ago).where(Inspection.id == first_old.json["id"]).execute()
    Nonconformance.update(created_at=long_ago).where(Nonconformance.id == first_old.json["nonconformance_id"]).execute()
    d.qc.post(f"/api/v1/batches/{old['id']}/disposition", json={"disposition": "rework", "reason": "返工"})
    inspect(d, old["id"], 2.0)

    # Receipts: 100 received, 5 rejected.
    ship(d, clean["id"], 100)
    d.manager.post(f"/api/v1/batches/{clean['id']}/receipts", json={"qty": 100, "qty_rejected": 5})

    today = figures(d)
    assert (today["batches_first_inspected"], today["batches_passed_first"]) == (3, 2)
    assert today["first_pass_yield"] == 0.6667  # all QC results would give 4/7; first results give 2/3
    assert (today["qty_received"], today["qty_accepted"], today["acceptance_rate"]) == (100, 95, 0.95)
    # Inspected today: reworked, clean, later_failed, old (100 each); reworked today: reworked and old.
    assert (today["qty_inspected"], today["qty_reworked"], today["rework_rate"]) == (400, 200, 0.5)
    assert (today["qty_scrapped"], today["scrap_rate"]) == (0, 0.0)
    # Opened today: reworked's and later_failed's (old's opened 40 days ago); of those, reworked's is closed.
    assert (today["nonconformances"], today["closed_nonconformances"]) == (2, 1)
    # Closed today: reworked's (within minutes) and old's (after 40 days): the mean is about 480 hours.
    assert 470 < today["mean_closure_hours"] < 490
    assert today["material_loss_rate"] is None

    forty_days_ago = china_date(long_ago)
    then = figures(d, forty_days_ago, forty_days_ago)
    assert (then["batches_first_inspected"], then["first_pass_yield"], then["nonconformances"]) == (1, 0.0, 1)

    empty = figures(d, supplier_id=d.other_task.supplier_id)
    assert empty["first_pass_yield"] is None and empty["acceptance_rate"] is None and empty["nonconformances"] == 0


def test_the_figures_route_checks_its_period_and_supplier(plant):
    d = plant
    today = china_date()
    backwards = d.manager.get(f"/api/v1/suppliers/{d.supplier.id}/quality?from={today}&to={today - timedelta(days=1)}")
    assert backwards.status_code == 422
    assert d.manager.get(f"/api/v1/suppliers/{d.supplier.id}/quality?from={today}").status_code == 422
    assert d.manager.get(f"/api/v1/suppliers/999999/quality?from={today}&to={today}").status_code == 404
    assert d.client.get(f"/api/v1/suppliers/{d.supplier.id}/quality?from={today}&to={today}",
                        headers=d.sup).status_code == 401


def _supplier_photo(d):
    return ready_photo(d.supplier, purpose="inspection").id
