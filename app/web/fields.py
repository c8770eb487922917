"""Output fields that dump model values the way every API answer shows them."""
from decimal import Decimal

from apiflask import fields
from marshmallow.utils import missing

from app.timeutil import iso_local
from app.web.presenters import caller_sees_prices


class LocalTime(fields.String):
    """A stored naive-UTC instant as ISO 8601 China time (+08:00)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return iso_local(value)


class Money(fields.String):
    """Money as text with two places (SQLite hands back 12.5 for a stored 12.50)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(Decimal(value).quantize(Decimal("0.01")))


class Price(Money):
    """Money only some staff may see (presenters.caller_sees_prices); null for the others."""

    def _serialize(self, value, attr, obj, **kwargs):
        return super()._serialize(value, attr, obj, **kwargs) if caller_sees_prices() else None


class Label(fields.String):
    """A code's Chinese name from a vocabulary mapping (unknown codes show as themselves)."""

    def __init__(self, names, **kwargs):
        # Output only: it reads the same attribute as the code it names (marshmallow refuses
        # two loadable fields on one attribute).
        super().__init__(dump_only=True, **kwargs)
        self.names = names

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else self.names.get(value, value)


class Whole(fields.Nested):
    """A nested view of the same object, e.g. a task's `plan`."""

    def get_value(self, obj, attr, accessor=None, default=missing):
        return obj
