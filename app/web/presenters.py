"""What schemas cannot say alone: signed photo links, masking for customers and suppliers, and
URLs, which only the web edge builds."""
from flask import current_app, g, url_for

from app.domain.vocabulary import PRICE_ROLES
from app.extensions import current
from app.labels import scan_url
from app.services.photos import original_key

URL_TTL = 600  # seconds a signed photo link works


def _signed(key):
    return current().storage.signed_url(key, expires_in=URL_TTL) if key else None


def photo_url(photo):
    """Staff and the supplier see the original (a duplicate shows the earlier photo's)."""
    return None if photo.status == "rejected" else _signed(original_key(photo))


def display_url(photo):
    """Customers only ever get the EXIF-stripped display copy."""
    return None if photo.status == "rejected" else _signed(photo.display_key)


def thumb_url(photo):
    return None if photo.status == "rejected" else _signed(photo.thumb_key)


def customer_actor(node):
    """Who completed a node, as the customer reads it: a role, never a person or a company."""
    if node.done_at is None:
        return None
    if node.task_id:
        return "工厂"
    return "质检" if node.code == "qc" else "跟单"


def mask_nodes_for_supplier(nodes, task):
    """On an order shared by several suppliers, who completed a node is shown only for this
    task's own completions: the others stay anonymous (in memory only; nothing is saved)."""
    for node in nodes:
        if node.task_id != task.id:
            node.done_by = None
    return nodes


def task_scan_url(task):
    return scan_url(current_app.config["PUBLIC_BASE_URL"], task.qr_code)


def task_label_url(task):
    return url_for("admin_labels.task_label", task_id=task.id)


def caller_sees_prices():
    """ERP keys with the `orders` scope, managers and admins see prices and costs; QC and
    executives only when the PRICE_ROLES setting names their role. A key kept for invites or
    alerts sees no prices."""
    if g.get("api_key") is not None:
        return "orders" in g.api_key.scopes.split()
    staff = g.get("staff")
    return staff is not None and staff.role in PRICE_ROLES + current_app.config["PRICE_ROLES"]


def batch_scan_url(batch):
    """What a batch's QR encodes: the same /s/<code> URL as a task's (batch codes start with "B.")."""
    return scan_url(current_app.config["PUBLIC_BASE_URL"], batch.qr_code) if batch.qr_code else None


def batch_label_url(batch):
    return url_for("admin_quality.batch_label", batch_id=batch.id)


def lot_scan_url(lot):
    """What a material lot's QR encodes (the same /s/<code> form as a task's)."""
    return scan_url(current_app.config["PUBLIC_BASE_URL"], lot.qr_code)


def lot_label_url(lot):
    return url_for("admin_materials.lot_label", lot_id=lot.id)
