"""Retried writes from phones, at the web edge: the same client_id is answered with the stored
response (200) and changes nothing.

`@idempotent("progress.report", target="{task_id}")` goes between `@bp.input` (it reads the
body's client_id) and `@bp.output` (it stores the dumped answer):

    @bp.post("/tasks/<int:task_id>/reports")
    @bp.auth_required(mp_auth)
    @bp.input(ReportIn, arg_name="body")
    @idempotent("progress.report", target="{task_id}")
    @bp.output(ReportOut, status_code=201)
    def report(task_id, body): ...

The view and the stored answer share one transaction: a view that fails stores nothing. A first
send (nearly every request) costs no lookup: the stored answer's INSERT is the check. A retry runs
the view again and, once the original has committed, loses on the unique index — or is refused by
a rule the original's change now breaks — and the whole transaction rolls back; only then is the
stored answer read and replayed. So retries cost a rolled-back transaction, first sends a statement
less (bench/ceiling.py: the "retry" row). Views under this decorator must keep every effect inside
the transaction (jobs with enqueue_after_commit), as they all do.
"""
import hashlib
from functools import wraps

from flask import Response

from app.extensions import write_transaction
from app.models import ClientRequest
from app.models.prepared import Prepared, Slot, insert_new
from app.web.auth import current_actor
from app.web.errors import ApiError


def _scoped(kind, target):
    """The operation and what it acts on: a client_id replayed against another task is refused,
    not answered with the first task's result. Fits ClientRequest.kind (32 characters)."""
    if target is None:
        return kind
    scoped = f"{kind}:{target}"
    if len(scoped) <= 32:
        return scoped
    return f"{kind[:15]}:{hashlib.sha1(scoped.encode()).hexdigest()[:16]}"


# A retry's stored answer (SQL written once: app/models/prepared.py).
_STORED = Prepared(lambda: (
    ClientRequest.select(ClientRequest.id, ClientRequest.kind, ClientRequest.response)
    .where((ClientRequest.actor_key == Slot("actor_key")) & (ClientRequest.client_id == Slot("client_id")))))


def _stored(actor_key, client_id):
    """The stored answer to this client_id: only what a replay needs."""
    return _STORED.first(actor_key=actor_key, client_id=client_id)


def _replay(row, kind):
    if row.kind != kind:
        raise ApiError(409, "client_id_reused", "该 client_id 已用于其他操作，请重新生成", field="client_id")
    return Response(row.response, status=200, mimetype="application/json")


def _split(rv):
    """(Response, status) from what an APIFlask output wrapper returns."""
    if isinstance(rv, Response):
        return rv, rv.status_code
    return rv[0], rv[1]


def idempotent(kind, target=None, optional=False):
    """Make a write view retry-safe by the body's `client_id` (see the module docstring).

    `target` formats the URL arguments into what the operation acts on, e.g. "{task_id}".
    `optional`: a body without client_id is simply run (a dashboard's or ERP's plain call)."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if optional and kwargs["body"].get("client_id") is None:
                return view(*args, **kwargs)
            actor_key = current_actor().key
            client_id = str(kwargs["body"]["client_id"])
            scoped = _scoped(kind, target.format(**kwargs) if target else None)
            try:
                with write_transaction():
                    response, status = _split(view(*args, **kwargs))
                    created = (response.get_json(silent=True) or {}).get("id")
                    insert_new(ClientRequest(actor_key=actor_key, client_id=client_id, kind=scoped,
                                             object_id=None if created is None else str(created),
                                             status_code=status, response=response.get_data(as_text=True)))
            except Exception:
                # A retry (or the same client_id sent twice at once, to two servers): it lost on the
                # unique index (IntegrityError) or was refused by a rule the first one's change now
                # breaks ("already done"), and rolled back. Once the first has committed, this is
                # its replay; with nothing stored, the error is the answer.
                try:
                    row = _stored(actor_key, client_id)
                except Exception:  # e.g. the connection is gone: the first error is the one to tell
                    row = None
                if row is None:
                    raise
                return _replay(row, scoped)
            return response, status

        return wrapper

    return decorate
