"""Manager and ERP REST API, under /api/v1."""


def register(app):
    from app.admin.auth import bp as auth_bp

    app.register_blueprint(auth_bp)
