"""Count the SQL statements a piece of code runs: query-count checks on hot paths."""
import logging


def statements(call):
    """(what `call()` returns, the SQL statements it ran): peewee logs each at DEBUG."""
    seen = []

    class Record(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    logger, handler = logging.getLogger("peewee"), Record()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        result = call()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return result, seen


def sent(call, database=None):
    """(what `call()` returns, every statement the database received): also BEGIN, COMMIT and the
    ROLLBACK a connection pool may send when a connection comes back, which peewee does not log.
    MySQL: each query PyMySQL sends; SQLite: sqlite3's trace callback on this thread's connection
    (only statements run by this thread, so pass a `call` that works in this thread) of `database`
    (default: the app's)."""
    import pymysql.connections
    from peewee import MySQLDatabase
    from pymysql.constants import COMMAND

    from app.extensions import db

    seen = []
    if database is None:
        database = db.obj
    if isinstance(database, MySQLDatabase):
        original = pymysql.connections.Connection._execute_command

        def spy(self, command, sql):
            if command == COMMAND.COM_QUERY:
                seen.append(sql if isinstance(sql, str) else sql.decode("utf-8", "replace"))
            return original(self, command, sql)

        pymysql.connections.Connection._execute_command = spy
        try:
            return call(), seen
        finally:
            pymysql.connections.Connection._execute_command = original
    traced = set()
    original_connect = database._connect

    def connect():  # a connection opened during the call is traced as well
        conn = original_connect()
        conn.set_trace_callback(seen.append)
        traced.add(conn)
        return conn

    database._connect = connect
    if not database.is_closed():
        database.connection().set_trace_callback(seen.append)
        traced.add(database.connection())
    try:
        return call(), seen
    finally:
        del database._connect
        for conn in traced:
            try:
                conn.set_trace_callback(None)
            except Exception:  # closed by then
                pass
