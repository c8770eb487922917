"""Mini program: uploads routes (being written)."""
from apiflask import APIBlueprint

bp = APIBlueprint("mp_uploads", __name__, url_prefix="/mp/v1")
