"""Mini program: supplier routes (being written)."""
from apiflask import APIBlueprint

bp = APIBlueprint("mp_supplier", __name__, url_prefix="/mp/v1")
