"""The ceiling the product is measured against (bench/ceiling.py): a minimal Flask + peewee app on
the same database, pool and gunicorn settings as the product, with two routes.

- POST /tx      the product's write shape: lock a row (SELECT … FOR UPDATE), insert one row,
                update one row, commit (SQLite: BEGIN IMMEDIATE as the product does).
- POST /insert  one INSERT in autocommit.

    gunicorn -w 4 --pythonpath bench minimal_app:app      (DATABASE_URL as for the product)
"""
import os
import random
import sys
from pathlib import Path

from flask import Flask, jsonify
from peewee import DateTimeField, IntegerField, Model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.extensions import connect_database  # noqa: E402  the product's database settings and pool
from app.timeutil import utcnow  # noqa: E402

ROWS = 1000
db = connect_database(os.environ["DATABASE_URL"])
is_mysql = "mysql" in os.environ["DATABASE_URL"]


class BenchRow(Model):
    n = IntegerField(default=0)

    class Meta:
        database = db
        table_name = "bench_row"


class BenchEvent(Model):
    row = IntegerField()
    at = DateTimeField()

    class Meta:
        database = db
        table_name = "bench_event"


def create_tables():
    with db.connection_context():
        db.create_tables([BenchRow, BenchEvent])
        BenchRow.insert_many([{"n": 0}] * ROWS).execute()


app = Flask(__name__)


@app.before_request
def _open():
    db.connect(reuse_if_open=True)


@app.teardown_request
def _close(exc):
    if not db.is_closed():
        db.close()


@app.post("/tx")
def tx():
    row_id = random.randint(1, ROWS)
    with db.atomic() if is_mysql else db.atomic("IMMEDIATE"):
        query = BenchRow.select().where(BenchRow.id == row_id)
        row = (query.for_update() if is_mysql else query).get()
        BenchEvent.insert(row=row.id, at=utcnow()).execute()
        BenchRow.update(n=BenchRow.n + 1).where(BenchRow.id == row.id).execute()
    return jsonify(id=row.id, n=row.n + 1), 201


@app.post("/insert")
def insert():
    event_id = BenchEvent.insert(row=0, at=utcnow()).execute()
    return jsonify(id=event_id), 201
