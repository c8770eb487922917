"""Errors the domain raises: a stable code, a Chinese message, the field at fault, and a kind.

Services say *what* went wrong (not found, conflict, invalid …); the web edge maps each kind to
an HTTP status (app/web/errors.py). Raise a fresh instance every time: a shared one would carry
the traceback of every earlier raise.
"""


class DomainError(Exception):
    kind = "invalid"

    def __init__(self, code, message, field=None, extra=None):
        super().__init__(code)
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra or {}


class BadRequest(DomainError):
    """The request cannot be understood as given (a bad code or credential)."""

    kind = "bad_request"


class Unauthorized(DomainError):
    kind = "unauthorized"


class Forbidden(DomainError):
    kind = "forbidden"


class NotFound(DomainError):
    """Also the answer for anything the caller may not see: it must not confirm existence."""

    kind = "not_found"


class Conflict(DomainError):
    """The request is valid but the current state does not allow it."""

    kind = "conflict"


class TooLarge(DomainError):
    kind = "too_large"


class Invalid(DomainError):
    """A value breaks a rule (validation beyond what the input schema checks)."""

    kind = "invalid"


class RateLimited(DomainError):
    kind = "rate_limited"


class Unavailable(DomainError):
    """An outside service (WeChat) cannot answer now."""

    kind = "unavailable"


def not_found(what="对象"):
    return NotFound("not_found", f"{what}不存在")
