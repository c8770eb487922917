"""Mini program: customer routes (being written)."""
from apiflask import APIBlueprint

bp = APIBlueprint("mp_customer", __name__, url_prefix="/mp/v1")
