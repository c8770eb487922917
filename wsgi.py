"""WSGI entry point: gunicorn wsgi:app (and `flask --app wsgi ...` for commands)."""
import gc

from app import create_app_or_exit

app = create_app_or_exit()
# The app's ~130k long-lived objects (modules, schemas, models) move out of the collector's reach:
# otherwise every full collection walks them all, a ~70 ms pause in the middle of some request
# every thousand or so (bench/ceiling.py's p99). Objects made later are still collected; start-up's
# own garbage is collected first, not frozen with the rest.
gc.collect()
gc.freeze()
