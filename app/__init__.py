"""The application factory."""
from datetime import timedelta

from apiflask import APIFlask
from flask import g, request

from app import config as settings
from app import extensions, logs
from app.extensions import db
from app.web import docs, errors

JSON_BODY_LIMIT = 1024 * 1024  # JSON bodies are small; only uploads may be large


def create_app(config=None):
    """Create the app: settings, database, Redis, storage and the job table, web hooks, errors,
    blueprints and the flask commands. This is where the layers are put together."""
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
        **docs.SETTINGS,
    )
    app.json.ensure_ascii = False

    logs.configure(app)
    extensions.init_database(app.config["DATABASE_URL"])
    ext = extensions.build(app, _job_table())
    ext.wechat_login = _wechat_login(ext)
    _register_request_hooks(app)
    errors.register(app)
    _register_blueprints(app)
    _register_commands(app)
    return app


def _job_table():
    from jobs.table import JOBS

    return JOBS


def _wechat_login(ext):
    """The one WeChat call a request makes (login), handed to the web edge as a plain function."""
    from bot import wechat

    return lambda code: wechat.login(ext, code)


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
    """Every blueprint, with its URL prefix: set here once, not in the blueprints."""
    from app.admin import auth as staff_auth
    from app.admin import labels, masterdata, node_templates, orders
    from app.web import files, health, landing
    from miniprogram_api import auth, customer, supplier, uploads

    for module in (health, files, landing, docs):
        app.register_blueprint(module.bp)
    for module in (auth, supplier, uploads, customer):
        app.register_blueprint(module.bp, url_prefix="/mp/v1")
    for module in (staff_auth, masterdata, orders, node_templates, labels):
        app.register_blueprint(module.bp, url_prefix="/api/v1")


def _register_commands(app):
    from app import cli
    from jobs import cli as jobs_cli

    cli.register(app)
    jobs_cli.register(app)
