"""Manager and ERP API: orders routes (being written)."""
from apiflask import APIBlueprint

bp = APIBlueprint("admin_orders", __name__, url_prefix="/api/v1")
