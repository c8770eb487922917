"""Paged lists as the contract wants them: ?page=1&per_page=20 → {items, page, per_page, total}."""
from apiflask import Schema
from apiflask.fields import Integer, List, Nested
from apiflask.validators import Range

from app.web import fields

MAX_PER_PAGE = 100
MAX_PAGE = 100_000  # 10 million rows deep; page × per_page must stay a sane OFFSET (SQLite overflows at 2^63)


class PageIn(Schema):
    page = fields.Integer(strict=False, load_default=1, validate=Range(1, MAX_PAGE))
    per_page = fields.Integer(strict=False, load_default=20, validate=Range(1, MAX_PER_PAGE))


def paginate(query, args, load=None):
    """One page of `query` for a `page_of` schema to dump; `load(rows)` loads what the items need
    for the whole page at once. The total counts the unpaged query; a short page (the last one) is
    its own count, so most lists — shorter than a page — cost one statement, not two. (So `query`
    must not carry its own LIMIT, and each of its rows is one item.)"""
    page, per_page = args["page"], args["per_page"]
    rows = list(query.paginate(page, per_page))
    if len(rows) < per_page and (rows or page == 1):  # the last page: the total is known, no COUNT
        total = (page - 1) * per_page + len(rows)
    else:
        total = query.count()
    if load:
        rows = load(rows)
    return {"items": rows, "page": page, "per_page": per_page, "total": total}


def page_of(item_schema, name):
    """The response schema of a paged list of `item_schema` (named for OpenAPI)."""
    return Schema.from_dict(
        {"items": List(Nested(item_schema)), "page": Integer(), "per_page": Integer(), "total": Integer()},
        name=name,
    )
