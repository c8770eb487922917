"""Quality figures per supplier and period: the supplier scorecard's quality inputs.

The period is China dates `start` … `end`, both included. Only QC inspections count (a
supplier's self-check is never the verdict). Definitions (README "Quality loop"):

- first_pass_yield: of the supplier's batches whose *first* QC inspection falls in the period,
  the share that passed it. Only the first QC result of each batch counts: a batch that failed
  and passed its re-inspection after rework is a failure here, and later inspections of a batch
  that passed first time do not count again.
- acceptance_rate: accepted ÷ received pieces, over the receipts recorded in the period.
- rework_rate / scrap_rate: pieces of batches disposed as rework / scrap in the period ÷ pieces
  of the batches QC inspected in the period (a batch's made quantity, counted once).
- nonconformances: how many opened in the period; closed_nonconformances: how many of those
  are closed; mean_closure_hours: mean opened → closed time of the nonconformances closed in the
  period (whenever they opened), in hours, one decimal.
- material_loss_rate: defined once, in app/services/materials.py `loss_rate` (scrapped and
  unaccounted material over issued, for the supplier's tasks completed in the period).

A rate without anything to divide by is None (no data), never 0.
"""
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from peewee import fn

from app.models import Batch, BatchMovement, Inspection, Nonconformance, Task
from app.models.base import among
from app.services import materials
from app.timeutil import CHINA


@dataclass
class QualityFigures:
    supplier_id: int
    start: object
    end: object
    batches_first_inspected: int
    batches_passed_first: int
    first_pass_yield: float | None
    qty_received: int
    qty_accepted: int
    acceptance_rate: float | None
    qty_inspected: int
    qty_reworked: int
    qty_scrapped: int
    rework_rate: float | None
    scrap_rate: float | None
    nonconformances: int
    closed_nonconformances: int
    mean_closure_hours: float | None
    material_loss_rate: float | None


def _utc_bounds(start, end):
    """China dates start … end (inclusive) → naive-UTC [from, to)."""
    lo = datetime.combine(start, time(), CHINA).astimezone(UTC).replace(tzinfo=None)
    hi = datetime.combine(end + timedelta(days=1), time(), CHINA).astimezone(UTC).replace(tzinfo=None)
    return lo, hi


def _rate(part, whole, digits=4):
    return round(part / whole, digits) if whole else None


def figures(supplier_id, start, end):
    lo, hi = _utc_bounds(start, end)
    own = Task.select(Task.id).where(Task.supplier == supplier_id)

    # First QC result per batch: each batch's earliest QC inspection (ties: the lower id), counted
    # when it falls in the period — the period's QC inspections, less batches inspected before it.
    qc = Inspection.source == "qc"
    firsts = {}
    for row in (Inspection.select(Inspection.batch, Inspection.id, Inspection.result)
                .where(qc & Inspection.task.in_(own) & (Inspection.inspected_at >= lo) & (Inspection.inspected_at < hi))
                .order_by(Inspection.inspected_at, Inspection.id)):
        firsts.setdefault(row.batch_id, row)
    if firsts:
        earlier = (Inspection.select(Inspection.batch).distinct()
                   .where(qc & (Inspection.inspected_at < lo) & among(Inspection.batch, list(firsts))))
        for row in earlier:
            firsts.pop(row.batch_id, None)
    passed_first = sum(r.result == "pass" for r in firsts.values())

    received = (BatchMovement.select(fn.COALESCE(fn.SUM(BatchMovement.qty), 0),
                                     fn.COALESCE(fn.SUM(BatchMovement.qty_rejected), 0))
                .join(Batch).where((BatchMovement.kind == "receive") & Batch.task.in_(own)
                                   & (BatchMovement.created_at >= lo) & (BatchMovement.created_at < hi))
                .tuples().first())
    qty_received, qty_rejected = (int(x or 0) for x in received)

    inspected_batches = (Inspection.select(Inspection.batch).distinct()
                         .where(qc & Inspection.task.in_(own) & (Inspection.inspected_at >= lo)
                                & (Inspection.inspected_at < hi)))
    qty_inspected = int(Batch.select(fn.COALESCE(fn.SUM(Batch.qty), 0))
                        .where(Batch.id.in_(inspected_batches)).scalar() or 0)

    def disposed(kind):
        batches = (Nonconformance.select(Nonconformance.batch).distinct()
                   .where(Nonconformance.task.in_(own) & (Nonconformance.disposition == kind)
                          & (Nonconformance.disposed_at >= lo) & (Nonconformance.disposed_at < hi)))
        return int(Batch.select(fn.COALESCE(fn.SUM(Batch.qty), 0)).where(Batch.id.in_(batches)).scalar() or 0)

    qty_reworked, qty_scrapped = disposed("rework"), disposed("scrap")

    ncs = Nonconformance.select().where(Nonconformance.task.in_(own))
    opened = list(ncs.where((Nonconformance.created_at >= lo) & (Nonconformance.created_at < hi)))
    closed = list(ncs.where((Nonconformance.closed_at >= lo) & (Nonconformance.closed_at < hi)))
    hours = [(nc.closed_at - nc.created_at).total_seconds() / 3600 for nc in closed]

    return QualityFigures(
        supplier_id=supplier_id, start=start, end=end,
        batches_first_inspected=len(firsts), batches_passed_first=passed_first,
        first_pass_yield=_rate(passed_first, len(firsts)),
        qty_received=qty_received, qty_accepted=qty_received - qty_rejected,
        acceptance_rate=_rate(qty_received - qty_rejected, qty_received),
        qty_inspected=qty_inspected, qty_reworked=qty_reworked, qty_scrapped=qty_scrapped,
        rework_rate=_rate(qty_reworked, qty_inspected), scrap_rate=_rate(qty_scrapped, qty_inspected),
        nonconformances=len(opened), closed_nonconformances=sum(nc.status == "closed" for nc in opened),
        mean_closure_hours=round(sum(hours) / len(hours), 1) if hours else None,
        material_loss_rate=materials.loss_rate(supplier_id, start, end),
    )
