"""Hot statements whose SQL text peewee writes once per database dialect, not on every run.

peewee turns a query into SQL by walking its tree each time the query runs; on a new progress
report that walk was about a third of the request's CPU (bench/profile_report.py: 3.2 of 10.7 ms).
A Prepared statement is written by peewee once, with named slots where the values go; each run
fills in the slots and sends the same text again. Rows come back through peewee's own cursor
wrappers, so a select still yields models (joined ones included), tuples or dicts as built.

    TASK_STATE = Prepared(lambda: Task.select(Task.id, Task.state).where(Task.id == Slot("id", Task.id)))
    task = TASK_STATE.first(id=7)

Only the slots vary: everything else in the built query (constants, columns, FOR UPDATE) is part
of the cached text, so a query whose shape depends on its arguments needs one Prepared per
shape. The text is cached per database class, so a builder may ask `is_mysql()`.
"""
from peewee import Insert, Value

from app.extensions import db


class _Slot:
    """A slot's marker among a built query's parameters. Not a peewee Node, so peewee keeps it as a
    parameter instead of rendering it."""

    __slots__ = ("name", "convert")

    def __init__(self, name, convert):
        self.name, self.convert = name, convert


def Slot(name, field=None):  # noqa: N802 - used like a peewee node constructor
    """Where the value named `name` goes. `field` converts it as peewee would (its db_value: a
    model instance to its id, for a foreign key)."""
    return Value(_Slot(name, field.db_value if field is not None else None), converter=False)


class Prepared:
    def __init__(self, build):
        self._build = build  # () → the peewee query
        self._compiled = {}  # database → (sql, parameters, query)

    def _statement(self):
        # Per database object, not class: peewee sets some SQL options per database (e.g. MySQL's
        # compound-select parentheses, from the server version it connected to).
        database = db.obj
        compiled = self._compiled.get(database)
        if compiled is None:
            query = self._build()
            sql, params = database.get_sql_context().sql(query).query()
            compiled = self._compiled[database] = (sql, tuple(params), query)
        return compiled

    def _run(self, values):
        sql, params, query = self._statement()
        args = [(p.convert(values[p.name]) if p.convert else values[p.name]) if isinstance(p, _Slot) else p
                for p in params]
        return db.execute_sql(sql, args), query

    def rows(self, **values):
        """A select's rows, as the built query would return them."""
        cursor, query = self._run(values)
        return list(query._get_cursor_wrapper(cursor).iterator())

    def first(self, **values):
        """A select's first row, or None (build it with .limit(1) unless the WHERE is unique)."""
        rows = self.rows(**values)
        return rows[0] if rows else None

    def execute(self, **values):
        """Run a write: an INSERT returns the new row's id, anything else the rows it changed."""
        cursor, query = self._run(values)
        if isinstance(query, Insert):
            return db.last_insert_id(cursor, Insert.SIMPLE)
        return db.rows_affected(cursor)


_inserts = {}  # (model, the columns given) → their Prepared INSERT


def insert_new(instance):
    """INSERT a model instance made with Model(**fields) (its defaults filled in), like
    Model.create: the columns it has values for (the others keep the database's default), and
    set its auto-increment id. → the instance."""
    model, data = type(instance), instance.__data__
    fields = tuple(f for f in model._meta.sorted_fields if f is not model._meta.primary_key and f.name in data)
    key = (model, tuple(f.name for f in fields))
    statement = _inserts.get(key)
    if statement is None:
        statement = _inserts[key] = Prepared(lambda: model.insert({f: Slot(f.name, f) for f in fields}))
    assert not db.obj.returning_clause, "insert_new reads the new id from the cursor"
    instance.id = statement.execute(**data)
    instance._dirty.clear()
    return instance


class PreparedList:
    """A list written once per shape, for app/web/paging.paginate: `page` (a select with the slots
    "limit" and "offset") and `count` (a select of one number), run with `values`."""

    def __init__(self, page, count, **values):
        self._page, self._count, self._values = page, count, values

    def paginate(self, page, per_page):
        return self._page.rows(**self._values, limit=per_page, offset=max(page - 1, 0) * per_page)

    def count(self):
        cursor, _ = self._count._run(self._values)
        return cursor.fetchone()[0]
