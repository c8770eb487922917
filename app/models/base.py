"""Base model: bound to the database proxy, snake_case table names, UTC timestamps."""
from peewee import DateTimeField, Model

from app.extensions import db
from app.timeutil import utcnow


class BaseModel(Model):
    created_at = DateTimeField(default=utcnow)

    class Meta:
        database = db
        legacy_table_names = False
