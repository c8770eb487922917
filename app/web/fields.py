"""Fields shared by every API family: output fields that dump model values the way every answer
shows them, and input fields that take only what their OpenAPI type says, within what the
database can hold."""
import re
from decimal import Decimal

from apiflask import fields
from apiflask.validators import Range
from marshmallow import ValidationError
from marshmallow.utils import missing
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from app.domain.vocabulary import DATE_MAX, DATE_MIN
from app.timeutil import iso_local
from app.web.presenters import caller_sees_prices

INT64_MAX = 2**63 - 1  # the largest value a BIGINT (MySQL) or INTEGER (SQLite) column holds


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


# --- input ---------------------------------------------------------------------------------------

def _validators(validate):
    return [] if validate is None else list(validate) if isinstance(validate, (list, tuple)) else [validate]


class Integer(fields.Integer):
    """A whole number. In a JSON body only a JSON integer: 1283.9, "1283" and true are refused,
    never truncated or cast. Query strings are all text: their fields say strict=False. Never
    beyond a 64-bit column (SQLite raises on more), whatever the field's own range, which is
    checked first so that its bound is the one an error names."""

    def __init__(self, *, strict=True, validate=None, **kwargs):
        super().__init__(strict=strict, validate=[*_validators(validate), Range(-INT64_MAX, INT64_MAX)], **kwargs)


class Id(Integer):
    """A row id: 1 … 2^63 − 1."""

    def __init__(self, *, validate=None, **kwargs):
        super().__init__(validate=[Range(1, INT64_MAX), *_validators(validate)], **kwargs)


class Number(fields.Float):
    """A JSON number: a numeric string or a boolean is refused, as OpenAPI's `number` says."""

    def _validated(self, value):
        if isinstance(value, str):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


MONEY_PATTERN = r"^\d{1,10}(\.\d{1,2})?$"


class Amount(fields.Field):
    """Money in: text such as "12.50" (as answers show it) or a JSON number. The range and the
    two places are the intake's rules (order_content.money); this only takes the two types."""

    def __init__(self, **kwargs):
        metadata = {"type": ["string", "number"], "pattern": MONEY_PATTERN, "minimum": 0,
                    "description": "金额，如 \"12.50\"（文本）或 12.5，最多两位小数",
                    **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValidationError("必须是金额，如 \"12.50\"")
        if isinstance(value, str) and not re.fullmatch(MONEY_PATTERN, value.strip()):
            raise ValidationError("必须是金额，如 \"12.50\"（不为负，最多两位小数）")
        return Decimal(str(value).strip())


class Date(fields.Date):
    """A calendar date, YYYY-MM-DD, between DATE_MIN and DATE_MAX (year 1 or 9999 is a typo,
    and overflows the date arithmetic of plans and ETAs)."""

    def __init__(self, **kwargs):
        metadata = kwargs.pop("metadata", {})
        note = f"{DATE_MIN} 至 {DATE_MAX}"
        metadata["description"] = f"{metadata['description']}（{note}）" if metadata.get("description") else note
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        day = super()._deserialize(value, attr, data, **kwargs)
        if not DATE_MIN <= day <= DATE_MAX:
            raise ValidationError(f"必须在 {DATE_MIN} 至 {DATE_MAX} 之间")
        return day


class IdConverter(IntegerConverter):
    """`<int:…>` in every route is an id: 1 … 2^63 − 1. Anything else is 404 before it reaches
    the database (SQLite cannot even take it as a parameter). Raised here rather than left
    unmatched: an unmatched PATCH beside a GET rule would answer 405."""

    regex = r"\d{1,19}"

    def to_python(self, value):
        number = int(value)
        if not 1 <= number <= INT64_MAX:
            raise NotFound()
        return number


# --- material quantities ---------------------------------------------------------------------

class Quantity(Number):
    """A material quantity in: a JSON number in the item's unit. Its sign and its three decimal
    places are the materials service's rules (negative_quantity, too_many_decimals …), so that
    each has its own code."""

    def __init__(self, **kwargs):
        metadata = {"minimum": 0, "description": "数量（按物料单位），大于 0，最多三位小数", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)


class QuantityOut(fields.Float):
    """A stored decimal quantity as a JSON number (three places at most)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else float(Decimal(str(value)).quantize(Decimal("0.001")))


def decimal_text(name):
    """A dump function for Function fields: the attribute `name`, a Decimal, as plain text without
    trailing zeros ("2.05", not "2.0500"), or None. Text, so no reading loses digits to a float."""
    def dump(obj):
        value = getattr(obj, name)
        return None if value is None else format(Decimal(value).normalize(), "f")
    return dump
