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
