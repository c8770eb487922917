"""What several test modules share: settings, pictures, request bodies, ready photos.

Test modules import from here (and from factories, sqlcount, fakes), never from each other or
from conftest.
"""
import io
import os
import uuid
from datetime import timedelta

from PIL import Image

from app.extensions import current, db
from app.models import Photo
from app.timeutil import china_date

SECRET = "test-secret-key-not-for-production"
BACKENDS = [b.strip() for b in os.environ.get("TEST_BACKENDS", "mysql,sqlite").split(",") if b.strip()]


# --- settings pointing an app (or the worker) at the loopback fakes -------------------------------

def wechat_settings(fake):
    return {
        "WECHAT_APP_ID": fake.appid,
        "WECHAT_APP_SECRET": fake.secret,
        "WECHAT_API_BASE_URL": fake.url,
        "WECOM_CORP_ID": fake.corp_id,
        "WECOM_SECRET": fake.corp_secret,
        "WECOM_AGENT_ID": fake.agent_id,
        "WECOM_API_BASE_URL": fake.url,
        "WECOM_ROBOT_KEY": fake.robot_keys[0],
    }


def oss_settings(fake):
    return {"OSS_ENDPOINT": fake.url, "OSS_BUCKET": fake.bucket,
            "OSS_ACCESS_KEY_ID": fake.access_key_id, "OSS_ACCESS_KEY_SECRET": fake.access_key_secret}


# --- data ---------------------------------------------------------------------------------------

def picture(fmt="JPEG", size=(64, 48), colour="orange"):
    """A one-colour picture in `fmt` (the same bytes for the same arguments)."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt)
    return out.getvalue()


def order_body(customer, suppliers, external_no="ERP-2026-0001", **changes):
    """A POST /api/v1/orders body: one task per supplier (冲压, 焊接), starting tomorrow, 30 days."""
    start = china_date() + timedelta(days=1)
    due = start + timedelta(days=30)
    body = {
        "external_no": external_no, "customer_id": customer.id, "product_code": "P-CHS-450",
        "product_name": "钣金机箱", "quantity": 1000, "planned_start": start.isoformat(), "due_date": due.isoformat(),
        "unit_price": "12.50", "notes": "首批",
        "tasks": [
            {"process": process, "supplier_id": s.id, "planned_qty": 1000, "tolerance_pct": 0.05,
             "planned_start": start.isoformat(), "due_date": due.isoformat(), "requirements": "按图纸 A3 加工",
             "unit_cost": "3.20"}
            for process, s in zip(("冲压", "焊接"), suppliers, strict=False)
        ],
    }
    body.update(changes)
    return body


def ready_photo(supplier, purpose="progress"):
    """A processed photo of `supplier`, as the upload and processing steps leave it."""
    base = f"s/{supplier.id}/test/{uuid.uuid4().hex}"
    storage = current().storage
    for suffix in (".jpg", ".thumb.jpg", ".display.jpg"):
        storage.put(base + suffix, picture("JPEG", (8, 8), "red"), "image/jpeg")
    return Photo.create(storage_key=base + ".jpg", thumb_key=base + ".thumb.jpg", display_key=base + ".display.jpg",
                        supplier=supplier, purpose=purpose, status="ready", content_type="image/jpeg")


def insert_row(table, known=None, **given):
    """A row as the previous release would insert it: the given columns, and a plain value for each
    other NOT NULL column without a database default among the `known` ones (default: all). → its id."""
    values = dict(given)
    for col in db.get_columns(table):
        if known is not None and col.name not in known:
            continue
        if col.name in values or col.primary_key or col.null or col.default is not None:
            continue
        kind = col.data_type.lower()
        if "date" in kind or "time" in kind:
            values[col.name] = "2026-12-01" if kind == "date" else "2026-12-01 00:00:00"
        elif any(k in kind for k in ("char", "text")):
            values[col.name] = f"{table}-{col.name}-{len(values)}-{given.get('id', '')}"[:30]
        else:
            values[col.name] = 0
    left, right = db.obj.quote  # the backend's identifier quotes ("" or ``)
    names = ", ".join(f"{left}{n}{right}" for n in values)
    marks = ", ".join([db.obj.param] * len(values))
    return db.execute_sql(f"INSERT INTO {left}{table}{right} ({names}) VALUES ({marks})",
                          list(values.values())).lastrowid
