"""Photo jobs (queue "media")."""
import logging

from app.services import photos

log = logging.getLogger(__name__)


def process_photo(photo_id):
    """Validate, hash, thumbnail and strip one uploaded photo. Safe to run twice."""
    status = photos.process(photo_id)
    log.info("photo %s: %s", photo_id, status)
    return status


def sweep_photos(now=None):
    """Periodic: queue again the photos whose processing was lost; give up stale ones."""
    return photos.sweep_pending(now)
