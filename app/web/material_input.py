"""The lots a batch used, one body for both API families: staff's (/api/v1) and the supplier's
(/mp/v1) `PUT /batches/<id>/materials`."""
from apiflask import Schema
from apiflask.fields import List, Nested, String
from apiflask.validators import Length
from marshmallow import ValidationError, validates_schema

from app.web.fields import Id, Quantity


class TraceLotIn(Schema):
    lot_code = String(validate=Length(1, 300), metadata={"description": "scanned label (code or URL) or lot number"})
    lot_id = Id()
    qty = Quantity(required=True, metadata={"description": "how much of the lot the batch used"})

    @validates_schema
    def one_lot(self, data, **kwargs):
        if ("lot_code" in data) == ("lot_id" in data):
            raise ValidationError("请指定物料批次：lot_code（扫码）或 lot_id 之一", field_name="lot_code")


class BatchLotsIn(Schema):
    lots = List(Nested(TraceLotIn), required=True, validate=Length(1, 100))
    note = String(allow_none=True, validate=Length(max=255))
