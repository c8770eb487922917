"""Base model: bound to the database proxy, snake_case table names, UTC timestamps."""
from peewee import SQL, DateTimeField, Model

from app.extensions import db, is_mysql
from app.timeutil import utcnow


class BaseModel(Model):
    created_at = DateTimeField(default=utcnow)

    class Meta:
        database = db
        legacy_table_names = False


def among(field, ids):
    """`field IN (…)` for a batch of integer ids, written as literals. peewee renders and the driver
    escapes every parameter one by one, which for a scan's thousand-id batches cost a fifth of the
    scan; int() guarantees only numbers reach the SQL text."""
    ids = [int(i) for i in ids]
    return field.in_(SQL("(" + ",".join(map(str, ids)) + ")")) if ids else field.in_([])


def fast_tuples(query):
    """A select's rows as plain tuples, for the scans' big reads. On MySQL straight from the driver,
    whose own conversions (ints, dates, datetimes, text; booleans as 0/1) are all a scan needs: peewee's per-column
    conversion on top cost about a sixth of a scan. SQLite returns dates as text: peewee converts there."""
    if is_mysql():
        return db.execute(query).fetchall()
    return list(query.tuples())
