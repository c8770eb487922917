"""Shared set-up of the quality tests (tests/test_quality*.py): a plant, batches, inspections."""
import io
import uuid
from types import SimpleNamespace

from app.models import NodeInstance, Notification, Photo, Task
from tests import factories as f
from tests.helpers import picture, ready_photo

QC_WECOM = "wang.qc"


def make_plant(app, client):
    """An order in production at one supplier (and another supplier's order), a QC inspector on
    WeCom, a manager, a supplier user of each supplier, a customer user, and a QC template."""
    sup, other = f.supplier("苏州精工冲压厂"), f.supplier("无锡顺达焊接厂")
    cust = f.customer()
    order = f.order(cust, [sup], product_code="P-CHS-450")
    other_order = f.order(f.customer(), [other])
    qc_user = f.staff("qc-wang", "long-enough-pw", "qc")
    qc_user.wecom_userid = QC_WECOM
    qc_user.save()
    qc = f.staff_session(app.test_client(), qc_user)
    manager = f.staff_client(app.test_client(), "manager")
    d = SimpleNamespace(
        app=app, client=client, qc=qc, qc_user=qc_user, manager=manager, order=order, supplier=sup,
        task=Task.get(Task.order == order), other_task=Task.get(Task.order == other_order),
        sup=f.bearer(f.wechat_user(sup)), other_sup=f.bearer(f.wechat_user(other)),
        cust=f.bearer(f.wechat_user(cust)))
    res = qc.post("/api/v1/inspection-templates", json={
        "name": "机箱通用检验", "items": [
            {"name": "外观", "check_type": "pass_fail", "photo_required": True},
            {"name": "板厚", "check_type": "numeric", "min_value": 1.9, "max_value": 2.1, "unit": "mm"},
        ]})
    assert res.status_code == 201, res.json
    d.template = res.json
    d.items = {i["name"]: i["id"] for i in res.json["items"]}
    return d


def new_batch(d, qty=200):
    res = d.client.post(f"/mp/v1/tasks/{d.task.id}/batches", headers=d.sup,
                        json={"client_id": str(uuid.uuid4()), "qty": qty})
    assert res.status_code == 201, res.json
    return res.json


def qc_photo(d):
    res = d.qc.post(f"/api/v1/tasks/{d.task.id}/photos", data={"file": (io.BytesIO(picture(colour="blue")), "a.jpg")},
                    content_type="multipart/form-data")
    assert res.status_code in (200, 201), res.json
    return res.json["id"]


def readings(d, thickness, photo_id, looks=True):
    return [{"item_id": d.items["外观"], "passed": looks, "photo_ids": [photo_id]},
            {"item_id": d.items["板厚"], "value": thickness}]


def inspect(d, batch_id, thickness, kind="first_article", photo_id=None, **extra):
    photo_id = photo_id or ready_photo_of_qc(d)
    return d.qc.post(f"/api/v1/batches/{batch_id}/inspections", json={
        "kind": kind, "sample_qty": 20, "readings": readings(d, thickness, photo_id), **extra})


def ready_photo_of_qc(d):
    """A processed photo QC took (as upload + processing leave it)."""
    photo = ready_photo(d.supplier, purpose="inspection")
    Photo.update(uploaded_by_staff=d.qc_user.id).where(Photo.id == photo.id).execute()
    return photo.id


def ship(d, batch_id, qty, headers=None):
    return d.client.post(f"/mp/v1/batches/{batch_id}/ship", headers=headers or d.sup,
                         json={"client_id": str(uuid.uuid4()), "qty": qty})


def qc_node(d):
    return NodeInstance.get((NodeInstance.order == d.order.id) & (NodeInstance.code == "qc"))


def qc_messages():
    return list(Notification.select().where((Notification.channel == "wecom_app")
                                            & (Notification.recipient == QC_WECOM)))
