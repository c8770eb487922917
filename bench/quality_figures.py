"""A supplier's quality figures (app/services/quality_figures.py) over a year of history, on SQLite.

    .venv/bin/python bench/quality_figures.py                  # 5,000 batches of one supplier
    .venv/bin/python bench/quality_figures.py --batches 20000

It migrates a throw-away SQLite database and bulk-inserts, for one supplier (and as much again for
another, which the figures must not read): that many batches over 365 days, each with one or two
QC inspections (10 % fail first and pass after rework, with a nonconformance), a self-check, a
shipment and a receipt. Then it asks for the figures of the last 30 days and of the whole year and
prints the time and the SQL statements of each call.
"""
import argparse
import logging
import random
import secrets
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TODAY = date(2026, 11, 20)
START = datetime(2025, 11, 21, 1, 0)  # naive UTC


def seed(batches, rng):
    from app.models import (
        Batch,
        BatchMovement,
        Customer,
        Inspection,
        InspectionTemplate,
        Nonconformance,
        Order,
        Supplier,
        Task,
    )

    template = InspectionTemplate.create(name="bench", family_id=1)
    customer = Customer.create(code="C", name="客户")
    for s in range(2):
        supplier = Supplier.create(code=f"S{s}", name=f"供应商{s}")
        order = Order.create(order_no=f"SO-{s}", customer=customer, product_name="机箱", quantity=10**6,
                             planned_start=TODAY - timedelta(days=400), due_date=TODAY)
        task = Task.create(order=order, task_no=f"SO-{s}-T1", process="冲压", supplier=supplier, planned_qty=10**6,
                           planned_start=order.planned_start, due_date=TODAY, qr_code=secrets.token_urlsafe(16))
        rows_b, rows_i, rows_m, rows_n = [], [], [], []
        first_id = (Batch.select().count() or 0) + 1
        for n in range(batches):
            at = START + timedelta(minutes=rng.randrange(365 * 24 * 60))
            bid = first_id + n
            rows_b.append({"id": bid, "task": task.id, "batch_no": f"{task.task_no}-B{n}", "qty": 100,
                           "qty_shipped": 100, "qty_received": 100, "qty_accepted": 98, "qty_rejected": 2,
                           "status": "released", "created_at": at, "qr_code": f"B.{s}-{n}"})
            fails = rng.random() < 0.1
            common = {"task": task.id, "batch": bid, "template": template.id, "sample_qty": 10, "defect_qty": 0}
            rows_i.append({**common, "kind": "patrol", "source": "self_check", "result": "pass", "inspected_at": at,
                           "created_at": at})
            rows_i.append({**common, "kind": "final", "source": "qc", "result": "fail" if fails else "pass",
                           "inspected_at": at + timedelta(hours=1), "created_at": at})
            if fails:
                rows_i.append({**common, "kind": "final", "source": "qc", "result": "pass",
                               "inspected_at": at + timedelta(days=1), "created_at": at})
                rows_n.append({"task": task.id, "batch": bid, "description": "板厚超差", "due_date": TODAY,
                               "disposition": "rework", "disposed_at": at + timedelta(hours=2), "status": "closed",
                               "closed_at": at + timedelta(days=1), "created_at": at + timedelta(hours=1)})
            rows_m.append({"batch": bid, "kind": "ship", "qty": 100, "created_at": at + timedelta(days=2)})
            rows_m.append({"batch": bid, "kind": "receive", "qty": 100, "qty_rejected": 2,
                           "created_at": at + timedelta(days=3)})
        for model, rows in ((Batch, rows_b), (Inspection, rows_i), (BatchMovement, rows_m), (Nonconformance, rows_n)):
            for i in range(0, len(rows), 500):
                model.insert_many(rows[i:i + 500]).execute()
    return Supplier.get(Supplier.code == "S0").id


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=5000)
    args = parser.parse_args()
    from app import create_app
    from app.extensions import db
    from app.migrate import upgrade
    from app.services import quality_figures
    from tests.sqlcount import statements

    with tempfile.TemporaryDirectory() as tmp:
        create_app({"APP_ENV": "test", "SECRET_KEY": "b" * 40, "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                    "PHOTO_DIR": tmp, "LOG_LEVEL": "WARNING"})
        upgrade()
        logging.getLogger("peewee").propagate = False  # statements() counts them; nobody prints them
        with db.connection_context():
            with db.atomic():
                supplier_id = seed(args.batches, random.Random(1))
            for label, start in (("30 days", TODAY - timedelta(days=29)), ("365 days", TODAY - timedelta(days=364))):
                began = time.perf_counter()
                figures, seen = statements(lambda: quality_figures.figures(supplier_id, start, TODAY))  # noqa: B023
                took = time.perf_counter() - began
                print(f"{args.batches} batches/supplier, {label}: {took * 1000:.0f} ms, {len(seen)} statements; "
                      f"FPY {figures.first_pass_yield}, acceptance {figures.acceptance_rate}, "
                      f"NCs {figures.nonconformances}, mean closure {figures.mean_closure_hours} h")


if __name__ == "__main__":
    main()
