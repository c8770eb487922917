"""Manager and ERP REST API (registered under /api/v1 by create_app)."""
