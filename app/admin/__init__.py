"""Manager and ERP REST API, under /api/v1."""


def register(app):
    from app.admin.auth import bp as auth_bp
    from app.admin.masterdata import bp as masterdata_bp
    from app.admin.orders import bp as orders_bp

    for bp in (auth_bp, masterdata_bp, orders_bp):
        app.register_blueprint(bp)
