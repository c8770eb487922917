"""Input schema helpers shared by the API families."""
from apiflask import Schema
from marshmallow import ValidationError


class FlatErrors(Schema):
    """Name nested fields in validation errors as `tasks[0].planned_qty`, not just `tasks`."""

    def handle_error(self, error, data, **kwargs):
        raise ValidationError(_flatten(error.messages))


def _flatten(messages, prefix=""):
    flat = {}
    for key, value in messages.items():
        name = f"{prefix}[{key}]" if isinstance(key, int) else (f"{prefix}.{key}" if prefix else str(key))
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat
