"""The HTTP edge shared by the API families: authentication, errors, idempotency, paging,
output fields and presenters, and the small non-API routes (health, signed files, QR landing)."""
