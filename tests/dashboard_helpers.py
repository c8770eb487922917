"""Set-up shared by the dashboard tests (test_dashboard.py, test_dashboard_browser.py): a frozen
batch with material, made through the API's own routes."""
from tests import quality_helpers


def frozen_plant(app, client):
    """make_plant's order with a batch shipped and frozen by a failed first article (the API's own
    routes), and steel issued to the task under a bill that leaves it short."""
    d = quality_helpers.make_plant(app, client)
    d.frozen = quality_helpers.new_batch(d, qty=200)
    assert quality_helpers.ship(d, d.frozen["id"], 150).status_code == 200
    failed = quality_helpers.inspect(d, d.frozen["id"], 2.4)
    assert failed.status_code == 201 and failed.json["result"] == "fail", failed.json
    m = d.manager
    item = m.post("/api/v1/material-items", json={"code": "ST-1.0", "name": "冷轧钢板", "unit": "kg"}).json
    lot = m.post("/api/v1/material-lots", json={"lot_no": "L-001", "item_id": item["id"], "quantity": 500}).json
    assert m.post("/api/v1/material-issues", json={"lot_id": lot["id"], "task_id": d.task.id, "qty": 40,
                                                   "unit": "kg"}).status_code == 201
    bill = {"lines": [{"item_id": item["id"], "qty_per_unit": 0.5, "tolerance_pct": 0.05}]}
    assert m.put(f"/api/v1/tasks/{d.task.id}/material-bill", json=bill).status_code == 200
    return d


def freeze_another(d):
    batch = quality_helpers.new_batch(d, qty=30)
    assert quality_helpers.ship(d, batch["id"], 30).status_code == 200
    answer = quality_helpers.inspect(d, batch["id"], 2.5)
    assert answer.status_code == 201 and answer.json["result"] == "fail", answer.json
    return batch
