"""The media queue's recovery path: a photo whose processing job was lost is processed by the
periodic sweep, and what nobody will ever finish is given up, as the outbox flush does for messages."""
from datetime import timedelta

from app.extensions import current
from app.models import Photo
from app.services.photos import PROCESSING_GRACE, STALE_AFTER, new_key
from app.timeutil import iso_local, utcnow
from tests import factories
from tests.helpers import picture


def _arrived_but_never_processed(supplier, user, created_at):
    """A photo whose bytes are stored and whose row says so, but whose job never ran (the worker
    died, or Redis lost the queue): what a crash between commit and processing leaves behind."""
    data = picture()
    key = new_key(supplier.id, "jpg")
    current().storage.put(key, data, "image/jpeg")
    return Photo.create(storage_key=key, supplier=supplier, uploader=user, purpose="progress",
                        content_type="image/jpeg", size=len(data), created_at=created_at)


def _sweep(app, at):
    result = app.test_cli_runner().invoke(args=["jobs", "run", "sweep-photos", "--now", iso_local(at)])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_photo_whose_job_was_lost_is_processed_by_the_sweep(app, dbconn, backend, request):
    sup = factories.supplier()
    user = factories.wechat_user(sup)
    now = utcnow()
    lost = _arrived_but_never_processed(sup, user, created_at=now - PROCESSING_GRACE - timedelta(minutes=1))
    fresh = _arrived_but_never_processed(sup, user, created_at=now)  # its job may still be on its way

    assert "'requeued': 1" in _sweep(app, now)
    if backend["name"] == "mysql":
        request.getfixturevalue("run_worker")({"PHOTO_DIR": backend["config"]["PHOTO_DIR"]})

    assert Photo.get_by_id(lost.id).status == "ready"
    assert Photo.get_by_id(lost.id).thumb_key is not None
    assert Photo.get_by_id(fresh.id).status == "pending"


def test_an_unused_upload_policy_is_given_up_but_an_arrived_photo_never_is(app, dbconn, backend, request):
    sup = factories.supplier()
    user = factories.wechat_user(sup)
    now = utcnow()
    long_ago = now - STALE_AFTER - timedelta(minutes=1)
    # A direct-upload policy nobody confirmed: a row with no bytes we know of behind it.
    unused = Photo.create(storage_key=new_key(sup.id, "jpg"), supplier=sup, uploader=user, purpose="node",
                          content_type="image/jpeg", created_at=long_ago)
    # Arrived long ago but never processed (the media worker was down for a day): it may
    # already illustrate a report, so it is processed late, never thrown away.
    late = _arrived_but_never_processed(sup, user, created_at=long_ago)

    out = _sweep(app, now)
    assert "'rejected': 1" in out and "'requeued': 1" in out
    if backend["name"] == "mysql":
        request.getfixturevalue("run_worker")({"PHOTO_DIR": backend["config"]["PHOTO_DIR"]})

    assert Photo.get_by_id(unused.id).status == "rejected"
    assert Photo.get_by_id(late.id).status == "ready"
    assert current().storage.exists(late.storage_key)
    assert "'rejected': 0" in _sweep(app, now)  # running it again changes nothing


def test_the_sweep_queues_a_photo_once_however_often_it_runs(app, dbconn, backend):
    if backend["name"] != "mysql":
        return  # the embedded default runs jobs at once: nothing waits in a queue
    from app.queueing import get_queue

    sup = factories.supplier()
    lost = _arrived_but_never_processed(sup, factories.wechat_user(sup),
                                        created_at=utcnow() - PROCESSING_GRACE - timedelta(minutes=1))
    for _ in range(3):
        _sweep(app, utcnow())
    assert [j.args for j in get_queue("media").jobs] == [(lost.id,)]
