"""Retried writes from phones: the same client_id returns the stored result (200) and changes nothing."""
import hashlib
import json

from peewee import IntegrityError

from app.errors import ApiError
from app.extensions import db
from app.models import ClientRequest


def _stored(actor, client_id):
    return ClientRequest.get_or_none((ClientRequest.actor_key == actor.key) & (ClientRequest.client_id == client_id))


def _replay(row, kind):
    if row.kind != kind:
        raise ApiError(409, "client_id_reused", "该 client_id 已用于其他操作，请重新生成", field="client_id")
    return json.loads(row.response), 200


def _scoped(kind, target):
    """The operation and what it acts on: a client_id replayed against another task is refused,
    not answered with the first task's result. Fits ClientRequest.kind (32 characters)."""
    if target is None:
        return kind
    scoped = f"{kind}:{target}"
    if len(scoped) <= 32:
        return scoped
    return f"{kind[:15]}:{hashlib.sha1(scoped.encode()).hexdigest()[:16]}"


def once(actor, client_id, kind, write, target=None):
    """Run `write()` → (body, object_id) in a transaction unless this client_id was seen.

    Returns (body, status): 201 the first time, 200 with the first body for a retry of the same
    operation on the same target. A retry racing the original loses on the unique index and
    replays the winner's result."""
    kind = _scoped(kind, target)
    row = _stored(actor, client_id)
    if row:
        return _replay(row, kind)
    try:
        with db.atomic():
            body, object_id = write()
            ClientRequest.create(
                actor_key=actor.key, client_id=client_id, kind=kind,
                object_id=str(object_id) if object_id is not None else None,
                status_code=201, response=json.dumps(body, ensure_ascii=False, default=str),
            )
    except IntegrityError:
        row = _stored(actor, client_id)
        if row is None:
            raise
        return _replay(row, kind)
    return body, 201
