"""Supplier scorecard (issue 12, item 2): a snapshot says which kind of period it covers (week or
month), is unique per supplier, kind and period start, and a period with nothing measurable keeps a
snapshot without score or grade (NULL)."""
from peewee import CharField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("supplier_score", "period", CharField(max_length=8, default="month")),
        migrator.drop_not_null("supplier_score", "score"),
        migrator.drop_not_null("supplier_score", "grade"),
    )
    # By its columns: the name differs between the backends (MySQL's may be the foreign key's own).
    old = [i.name for i in db.get_indexes("supplier_score") if i.columns == ["supplier_id", "period_start", "period_end"]]
    # MySQL keeps an index on the foreign key's column: add the new one (it starts with it) first.
    migrator.migrate(migrator.add_index("supplier_score", ("supplier_id", "period", "period_start"), True))
    for name in old:
        migrator.migrate(migrator.drop_index("supplier_score", name))


def down(migrator, db):
    # Weeks and months never share a start and end, so the old unique index holds again.
    db.execute_sql("DELETE FROM supplier_score WHERE score IS NULL OR grade IS NULL")
    migrator.migrate(migrator.add_index("supplier_score", ("supplier_id", "period_start", "period_end"), True))
    migrator.migrate(migrator.drop_index("supplier_score", "supplier_score_supplier_id_period_period_start"))
    migrator.migrate(
        migrator.drop_column("supplier_score", "period"),
        migrator.add_not_null("supplier_score", "score"),
        migrator.add_not_null("supplier_score", "grade"),
    )
