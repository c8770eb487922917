"""The application factory."""
import logging
import sys
from datetime import timedelta

from apiflask import APIFlask
from flask import g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from app import config as settings
from app import extensions, logs
from app.extensions import db
from app.web import docs, errors, fields, jsonbody, openapi
from app.web.jsonbody import JSON_BODY_LIMIT

log = logging.getLogger(__name__)


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
        AUTH_ERROR_DESCRIPTION="未登录或凭证无效（unauthorized、invalid_api_key、invalid_token、token_expired、wrong_credential、party_deactivated）",
        VALIDATION_ERROR_DESCRIPTION="参数不正确（validation_error，field 指明字段；body_not_object）",
        NOT_FOUND_DESCRIPTION="不存在，或不属于调用者（not_found）",
        INFO={"description": "委外/外协生产协同后端：小程序、管理端与 ERP 接口。错误统一为 {error: {code, message}}。"},
        **docs.SETTINGS,
    )
    app.json.ensure_ascii = False
    app.url_map.converters["int"] = fields.IdConverter  # before any route: every <int:…> is an id

    logs.configure(app)
    if app.config["PROXY_HOPS"]:  # the client's address and scheme, as the trusted proxies saw them
        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    _warn_about_production_gaps(app.config)
    extensions.init_database(app.config["DATABASE_URL"])
    ext = extensions.build(app, _job_table())
    ext.wechat_login = _wechat_login(ext)
    ext.wecom_callback = _wecom_callback(ext)
    _register_request_hooks(app)
    errors.register(app)
    jsonbody.install()
    openapi.register(app)
    _register_blueprints(app)
    _register_commands(app)
    return app


def create_app_or_exit():
    """create_app for the entry points of processes (wsgi.py for gunicorn and flask commands, the RQ
    worker): a configuration error ends the process with one line on stderr, not a traceback. Exit
    status 3 is what gunicorn's master reads as "a worker cannot boot": it stops, instead of
    starting one failing worker after another."""
    try:
        return create_app()
    except settings.ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(3)


def _warn_about_production_gaps(cfg):
    """Production without WeChat or OSS runs, but not as production should: say so at every start."""
    if cfg["APP_ENV"] != "production":
        return
    if not cfg["WECHAT_ENABLED"]:
        log.warning("PRODUCTION WITHOUT WECHAT: WECHAT_APP_ID/WECHAT_APP_SECRET are not set, so nobody can log in "
                    "to the mini program and messages are only recorded, never sent")
    if not cfg["OSS_ENABLED"]:
        log.warning("PRODUCTION WITHOUT OSS: OSS_ENDPOINT/OSS_BUCKET/OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET are not all "
                    "set, so photos go to PHOTO_DIR on this machine's disk: the web processes are not stateless and "
                    "must not be scaled out to other machines; back up PHOTO_DIR")


def _job_table():
    from jobs.table import JOBS

    return JOBS


def _wechat_login(ext):
    """The one WeChat call a request makes (login), handed to the web edge as a plain function."""
    from bot import wechat

    return lambda code: wechat.login(ext, code)


def _wecom_callback(ext):
    """The manager bot's callback (crypto, parsing, the passive reply), for the web edge's route."""
    from bot.callback import WeComCallback

    return WeComCallback(ext.config)


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
    from app.admin import alerts, dashboard, labels, masterdata, materials, node_templates, orders, quality, staff
    from app.admin import auth as staff_auth
    from app.dashboard import views as dashboard_pages
    from app.web import files, health, landing, wecom_callback
    from miniprogram_api import auth, customer, supplier, supplier_quality, uploads
    from miniprogram_api import materials as mp_materials

    for module in (health, files, landing, docs, wecom_callback):
        app.register_blueprint(module.bp)
    for module in (auth, supplier, supplier_quality, uploads, customer, mp_materials):
        app.register_blueprint(module.bp, url_prefix="/mp/v1")
    for module in (staff_auth, masterdata, orders, node_templates, labels, alerts, staff, quality, materials,
                   dashboard):
        app.register_blueprint(module.bp, url_prefix="/api/v1")
    app.register_blueprint(dashboard_pages.bp, url_prefix="/dashboard")


def _register_commands(app):
    from app import cli
    from jobs import cli as jobs_cli

    cli.register(app)
    jobs_cli.register(app)
