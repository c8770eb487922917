"""Custom fields."""
import json

from peewee import TextField


class JSONTextField(TextField):
    """JSON stored as text. peewee's JSONField casts to JSON, which MariaDB (JSON = LONGTEXT)
    rejects, and we never query inside these documents."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)

    def python_value(self, value):
        return None if value is None else json.loads(value)
