"""The body of an inspection, one shape for both API families: QC's (/api/v1) and a supplier's
self-check (/mp/v1). Readings take `passed` and `value` as given, so that a reading of the wrong
type is the service's clear error (wrong_reading_type), not a generic validation error."""
from apiflask import Schema
from apiflask.fields import List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range

from app.domain.vocabulary import DEFECT_CATEGORIES, INSPECTION_KINDS
from app.web.fields import Id, Integer

MAX_QTY = 10_000_000
MAX_PHOTOS = 9


def photo_ids(description="照片 id"):
    return List(Id(), validate=Length(max=MAX_PHOTOS), metadata={"description": f"{description}，最多 {MAX_PHOTOS} 张"})


class ReadingIn(Schema):
    item_id = Id(required=True, metadata={"description": "检验项目 id（模板的 items[].id）"})
    passed = Raw(allow_none=True, metadata={"type": "boolean", "description": "合格/不合格项目：true | false"})
    value = Raw(allow_none=True, metadata={"type": "number", "description": "数值项目：读数"})
    note = String(allow_none=True, validate=Length(max=255))
    photo_ids = photo_ids()


class DefectIn(Schema):
    category = String(required=True, validate=OneOf(list(DEFECT_CATEGORIES)),
                      metadata={"description": "；".join(f"{k} = {v}" for k, v in DEFECT_CATEGORIES.items())})
    count = Integer(required=True, validate=Range(1, MAX_QTY))


class InspectionBodyIn(Schema):
    kind = String(required=True, validate=OneOf(list(INSPECTION_KINDS)),
                  metadata={"description": "；".join(f"{k} = {v}" for k, v in INSPECTION_KINDS.items())})
    template_id = Id(allow_none=True, metadata={
        "description": "要用的模板版本；不填 = 适用于该任务的最具体的现行模板"})
    sample_qty = Integer(required=True, validate=Range(-MAX_QTY, MAX_QTY), metadata={"description": "抽样数量，1 至批次数量"})
    readings = List(Nested(ReadingIn), required=True, validate=Length(max=50),
                    metadata={"description": "模板的每个检验项目一条"})
    defects = List(Nested(DefectIn), load_default=list, validate=Length(max=20), metadata={"description": "按类别的缺陷数"})
    note = String(allow_none=True, validate=Length(max=1000))
    photo_ids = photo_ids("整次检验的照片")
