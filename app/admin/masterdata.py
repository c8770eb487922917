"""Manager and ERP API: masterdata routes (being written)."""
from apiflask import APIBlueprint

bp = APIBlueprint("admin_masterdata", __name__, url_prefix="/api/v1")
