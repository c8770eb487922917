"""The application factory."""
from datetime import timedelta

from apiflask import APIFlask
from flask import g, request

from app import config as settings
from app import errors, extensions, logs
from app.extensions import db

JSON_BODY_LIMIT = 1024 * 1024  # JSON bodies are small; only uploads may be large


def create_app(config=None):
    """Create the app: settings, database, Redis/queues, storage, blueprints, errors, CLI."""
    app = APIFlask(
        __name__,
        title="外协协同 API",
        version="1.0",
        spec_path="/openapi.json",
        docs_path="/docs",
    )
    app.config.update(settings.load(config))
    app.config.update(
        VALIDATION_ERROR_SCHEMA=errors.ErrorEnvelope,
        HTTP_ERROR_SCHEMA=errors.ErrorEnvelope,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=app.config["APP_ENV"] == "production",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        SPEC_FORMAT="json",
        INFO={"description": "委外/外协生产协同后端：小程序、管理端与 ERP 接口。错误统一为 {error: {code, message}}。"},
    )
    app.json.ensure_ascii = False

    logs.configure(app)
    extensions.init_database(app.config["DATABASE_URL"])
    extensions.build(app)
    _register_request_hooks(app)
    errors.register(app)
    _register_blueprints(app)

    from app import cli

    cli.register(app)
    return app


def _register_request_hooks(app):
    @app.before_request
    def open_db_and_limit_body():
        # Close at teardown only what this request opened (a test or CLI may hold one).
        g.opened_db = db.is_closed()
        if g.opened_db:
            db.connect()
        if request.mimetype != "multipart/form-data":
            request.max_content_length = JSON_BODY_LIMIT

    @app.teardown_request
    def close_db(exc):
        if g.get("opened_db") and not db.is_closed():
            db.close()


def _register_blueprints(app):
    from app.admin import register as register_admin
    from app.files import bp as files_bp
    from app.health import bp as health_bp
    from app.landing import bp as landing_bp
    from miniprogram_api import register as register_mp

    app.register_blueprint(health_bp)
    app.register_blueprint(files_bp)
    app.register_blueprint(landing_bp)
    register_mp(app)
    register_admin(app)
