"""Settings from the environment, with the embedded defaults.

Nothing set → SQLite under instance/, jobs in process, photos on local disk, WeChat
messages recorded instead of sent. Each outside service switches on when its settings
are present. `create_app(config)` may override any key (tests do).
"""
import os
import secrets
from datetime import date, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"


class ConfigError(RuntimeError):
    """A setting is missing or wrong: the process cannot start (one line, not a traceback)."""


def _env(name, default=None):
    value = os.environ.get(name, "").strip()
    return value if value else default


def _env_int(name, default):
    value = _env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {value!r}")


def _instance_secret():
    """A development secret kept in instance/ so tokens survive restarts."""
    INSTANCE.mkdir(exist_ok=True)
    path = INSTANCE / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def load(overrides=None):
    """Return the settings dict: environment first, then `overrides`."""
    overrides = dict(overrides or {})
    cfg = _from_environment()
    cfg["APP_ENV"] = overrides.get("APP_ENV") or cfg["APP_ENV"]
    cfg.update(overrides)
    _derive(cfg)
    return cfg


def _from_environment():
    """Our settings as the environment gives them, with the embedded defaults."""
    return {
        "APP_ENV": _env("APP_ENV", "development"),
        "SECRET_KEY": _env("SECRET_KEY"),
        "DATABASE_URL": _env("DATABASE_URL", f"sqlite:///{INSTANCE / 'app.db'}"),
        "REDIS_URL": _env("REDIS_URL"),
        "PUBLIC_BASE_URL": _env("PUBLIC_BASE_URL", "http://127.0.0.1:5000"),
        "LOG_LEVEL": _env("LOG_LEVEL", "INFO"),
        "LOG_FORMAT": _env("LOG_FORMAT", "json"),
        "MAX_CONTENT_LENGTH": _env_int("MAX_CONTENT_LENGTH", 12 * 1024 * 1024),
        # Mini program (also the subscribe-message sender).
        "WECHAT_APP_ID": _env("WECHAT_APP_ID"),
        "WECHAT_APP_SECRET": _env("WECHAT_APP_SECRET"),
        "WECHAT_API_BASE_URL": _env("WECHAT_API_BASE_URL", "https://api.weixin.qq.com"),
        # WeCom (企业微信) app for manager alerts and the bot; group robot optional.
        "WECOM_CORP_ID": _env("WECOM_CORP_ID"),
        "WECOM_AGENT_ID": _env_int("WECOM_AGENT_ID", 0),
        "WECOM_SECRET": _env("WECOM_SECRET"),
        "WECOM_TOKEN": _env("WECOM_TOKEN"),
        "WECOM_ENCODING_AES_KEY": _env("WECOM_ENCODING_AES_KEY"),
        "WECOM_ROBOT_KEY": _env("WECOM_ROBOT_KEY"),
        "WECOM_API_BASE_URL": _env("WECOM_API_BASE_URL", "https://qyapi.weixin.qq.com"),
        # Subscribe-message templates the mini program may ask customers to accept.
        "SUBSCRIBE_TEMPLATE_IDS": tuple(
            t.strip() for t in _env("SUBSCRIBE_TEMPLATE_IDS", "TPL_NODE_DONE,TPL_DELAY").split(",") if t.strip()
        ),
        # The mini-program page a customer's node message opens (the order's id is added as ?id=):
        # it must be a page of the published mini program, or WeChat refuses the message (41030).
        "MP_ORDER_PAGE": _env("MP_ORDER_PAGE", "pages/order/detail"),
        "WECHAT_HTTP_TIMEOUT": float(_env("WECHAT_HTTP_TIMEOUT", "5")),
        # How many times one WeChat call may refresh its token before giving up.
        "WECHAT_TOKEN_RETRIES": _env_int("WECHAT_TOKEN_RETRIES", 2),
        # Outbox delivery (README "Production"): rows a send job claims at once, the threads that
        # send them, how long a claim lasts before a crashed sender's rows are taken again, and how
        # long one job keeps claiming batches before it hands over to a fresh job.
        "OUTBOX_BATCH": _env_int("OUTBOX_BATCH", 200),
        "OUTBOX_THREADS": _env_int("OUTBOX_THREADS", 16),
        "OUTBOX_LEASE_SECONDS": _env_int("OUTBOX_LEASE_SECONDS", 600),
        "OUTBOX_JOB_SECONDS": _env_int("OUTBOX_JOB_SECONDS", 60),
        # Robot digests (README "Customer node pushes, urges and digests"): when a send batch holds more
        # than this many alert messages for one group robot, they go as one digest; the digest links
        # to DASHBOARD_ALERTS_URL (the dashboard's alert list) when it is set.
        "OUTBOX_ROBOT_DIGEST_AFTER": _env_int("OUTBOX_ROBOT_DIGEST_AFTER", 5),
        "DASHBOARD_ALERTS_URL": _env("DASHBOARD_ALERTS_URL"),
        # The group robot's rolling window (20 messages per 60 s on the platform; one second of margin
        # for clock and network). Tests shorten it together with the fake's.
        "WECOM_ROBOT_WINDOW_SECONDS": float(_env("WECOM_ROBOT_WINDOW_SECONDS", "61")),
        # After a 45009 (frequency limit) the channel waits this long before its next call.
        "WECHAT_RATE_LIMIT_PAUSE_SECONDS": float(_env("WECHAT_RATE_LIMIT_PAUSE_SECONDS", "60")),
        # Aliyun OSS; all four → OSS, otherwise photos go to PHOTO_DIR.
        "OSS_ENDPOINT": _env("OSS_ENDPOINT"),
        "OSS_BUCKET": _env("OSS_BUCKET"),
        "OSS_ACCESS_KEY_ID": _env("OSS_ACCESS_KEY_ID"),
        "OSS_ACCESS_KEY_SECRET": _env("OSS_ACCESS_KEY_SECRET"),
        "PHOTO_DIR": _env("PHOTO_DIR", str(INSTANCE / "photos")),
        # A CJK TrueType font for labels (label.png draws with it, labels.pdf embeds it); else fontconfig's.
        "LABEL_FONT_PATH": _env("LABEL_FONT_PATH"),
        # Mini program bearer tokens.
        "TOKEN_TTL_SECONDS": _env_int("TOKEN_TTL_SECONDS", 7 * 24 * 3600),
        # Dashboard sessions end this long after login, however busy (the cookie's idle limit slides).
        "STAFF_SESSION_HOURS": _env_int("STAFF_SESSION_HOURS", 12),
        # Staff roles besides manager and admin that see prices and costs, comma-separated (e.g. qc).
        "PRICE_ROLES": tuple(r.strip() for r in (_env("PRICE_ROLES") or "").split(",") if r.strip()),
        "INVITE_TTL_DAYS": _env_int("INVITE_TTL_DAYS", 14),
        # Proxies in front of the app whose X-Forwarded-For/-Proto are believed (1 behind one https
        # proxy). 0 believes none: a client could otherwise pick its own address and dodge the
        # login throttle; with a proxy and 0, every client shares the proxy's address.
        "PROXY_HOPS": _env_int("PROXY_HOPS", 0),
        # Delay engine (app/services/delay_engine.py, README "Alerts"): a task predicted or actually
        # this many working days late gets a delay alert; a missing report counts from this China
        # time of a working day; customers are warned of a delay known this many days before the
        # due date; an unacknowledged alert escalates to executives after these hours.
        "DELAY_THRESHOLD_DAYS": _env_int("DELAY_THRESHOLD_DAYS", 2),
        "REPORT_CUTOFF": _env("REPORT_CUTOFF", "18:00"),
        "EARLY_WARNING_DAYS": _env_int("EARLY_WARNING_DAYS", 3),
        "ESCALATE_RED_HOURS": _env_int("ESCALATE_RED_HOURS", 2),
        "ESCALATE_OTHER_HOURS": _env_int("ESCALATE_OTHER_HOURS", 8),
        # Working days (app/services/schedule.py): ISO weekdays 1 = Monday … 7 = Sunday, as ranges
        # and/or a list ("1-6" = Monday to Saturday, "1-5,7"); public holidays off, and the make-up
        # working days of China's 调休 (weekend days that are worked), as comma-separated ISO dates.
        "WORK_WEEKDAYS": _env("WORK_WEEKDAYS", "1-6"),
        "HOLIDAYS": _env("HOLIDAYS", ""),
        "MAKEUP_WORKDAYS": _env("MAKEUP_WORKDAYS", ""),
        # Supplier scorecard (app/services/scorecard.py, README "Supplier scorecard"): each KPI's weight
        # as key=weight pairs (whole numbers summing to 100; unnamed KPIs keep their default weight,
        # 0 leaves a KPI out), and the lowest scores of grades A, B and C (below the last: D).
        "SCORECARD_WEIGHTS": _env("SCORECARD_WEIGHTS", ""),
        "SCORECARD_GRADE_BANDS": _env("SCORECARD_GRADE_BANDS", "85,70,50"),
        # Exports (app/services/export_slots.py, README "Dashboard"): how many may run at once in the
        # whole deployment (every web process: counted in Redis when configured); one per caller.
        "EXPORT_MAX_CONCURRENT": _env_int("EXPORT_MAX_CONCURRENT", 2),
    }


def _derive(cfg):
    """Switches that follow from the other settings; checked once here."""
    production = cfg["APP_ENV"] == "production"
    if not cfg.get("SECRET_KEY"):
        if production:
            raise ConfigError("SECRET_KEY must be set when APP_ENV=production (e.g. python -c "
                              "'import secrets; print(secrets.token_urlsafe(48))')")
        cfg["SECRET_KEY"] = _instance_secret()
    cfg["WECHAT_ENABLED"] = bool(cfg.get("WECHAT_APP_ID") and cfg.get("WECHAT_APP_SECRET"))
    cfg["WECOM_ENABLED"] = bool(cfg.get("WECOM_CORP_ID") and cfg.get("WECOM_SECRET"))
    cfg["OSS_ENABLED"] = all(
        cfg.get(k) for k in ("OSS_ENDPOINT", "OSS_BUCKET", "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET")
    )
    # The demo login exists only to try the API without WeChat: never in production,
    # never once real WeChat credentials are configured.
    cfg["DEMO_LOGIN_ENABLED"] = not production and not cfg["WECHAT_ENABLED"]
    cfg["REPORT_CUTOFF"] = _clock_time("REPORT_CUTOFF", cfg["REPORT_CUTOFF"])
    cfg["WORK_WEEKDAYS"] = parse_weekdays(cfg.get("WORK_WEEKDAYS", "1-6"))
    cfg["HOLIDAYS"] = parse_dates("HOLIDAYS", cfg.get("HOLIDAYS", ""))
    cfg["MAKEUP_WORKDAYS"] = parse_dates("MAKEUP_WORKDAYS", cfg.get("MAKEUP_WORKDAYS", ""))
    cfg["SCORECARD_WEIGHTS"] = parse_weights(cfg.get("SCORECARD_WEIGHTS", ""))
    cfg["SCORECARD_GRADE_BANDS"] = parse_bands(cfg.get("SCORECARD_GRADE_BANDS", "85,70,50"))
    if cfg["EXPORT_MAX_CONCURRENT"] < 1:
        raise ConfigError("EXPORT_MAX_CONCURRENT must be at least 1")
    cfg.setdefault("JSON_AS_ASCII", False)


# The scorecard's KPIs and their default weights (sum 100): delivery 45, quality 40, service 15.
SCORECARD_DEFAULT_WEIGHTS = {
    "on_time_rate": 25,
    "avg_days_late": 10,
    "delivery_cycle": 5,
    "first_pass_yield": 15,
    "acceptance_rate": 15,
    "rework_scrap_rate": 5,
    "material_loss_rate": 5,
    "report_compliance": 10,
    "node_timeliness": 5,
    "urge_response": 5,
}


def parse_weights(value):
    """SCORECARD_WEIGHTS ("on_time_rate=30,urge_response=0", or a dict) → {kpi: weight} over every
    KPI, the defaults for those not named; whole numbers ≥ 0 that must sum to 100."""
    weights = dict(SCORECARD_DEFAULT_WEIGHTS)
    if isinstance(value, dict):
        pairs = list(value.items())
    else:
        pairs = []
        for part in (p.strip() for p in str(value or "").split(",")):
            if part:
                key, sep, number = part.partition("=")
                if not sep:
                    raise ConfigError(f"SCORECARD_WEIGHTS must be key=weight pairs like on_time_rate=30, not {part!r}")
                pairs.append((key.strip(), number.strip()))
    for key, number in pairs:
        if key not in SCORECARD_DEFAULT_WEIGHTS:
            raise ConfigError(f"SCORECARD_WEIGHTS: unknown KPI {key!r} (known: {', '.join(SCORECARD_DEFAULT_WEIGHTS)})")
        try:
            weight = int(number)
        except (TypeError, ValueError):
            raise ConfigError(f"SCORECARD_WEIGHTS: the weight of {key} must be a whole number, not {number!r}")
        if weight < 0:
            raise ConfigError(f"SCORECARD_WEIGHTS: the weight of {key} may not be negative")
        weights[key] = weight
    total = sum(weights.values())
    if total != 100:
        raise ConfigError(f"SCORECARD_WEIGHTS must sum to 100, not {total} ({weights})")
    return weights


def parse_bands(value):
    """SCORECARD_GRADE_BANDS ("85,70,50") → the lowest scores of A, B, C: descending, within 0–100."""
    try:
        bands = tuple(float(v) for v in (value.split(",") if isinstance(value, str) else value))
    except ValueError:
        raise ConfigError(f"SCORECARD_GRADE_BANDS must be three scores like 85,70,50, not {value!r}")
    if len(bands) != 3 or not 100 >= bands[0] > bands[1] > bands[2] >= 0:
        raise ConfigError(f"SCORECARD_GRADE_BANDS must be three descending scores within 0-100 like 85,70,50, "
                          f"not {value!r}")
    return bands


def _clock_time(name, value):
    """'HH:MM' → datetime.time (an override may already be one)."""
    if isinstance(value, time):
        return value
    try:
        hours, minutes = (int(part) for part in str(value).split(":"))
        return time(hours, minutes)
    except ValueError:
        raise ConfigError(f"{name} must be a time of day like 18:00, not {value!r}")


def parse_weekdays(value):
    """WORK_WEEKDAYS → a sorted tuple of ISO weekdays (1 = Monday). Accepts "1-6", "1-5,7" or numbers."""
    if not isinstance(value, str):
        days = {int(d) for d in value}
    else:
        days = set()
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            low, _, high = part.partition("-")
            try:
                first, last = int(low), int(high or low)
            except ValueError:
                raise ConfigError(f"WORK_WEEKDAYS must be weekdays 1-7 like 1-6 or 1-5,7, not {value!r}")
            days.update(range(first, last + 1))
    if not days or not days <= set(range(1, 8)):
        raise ConfigError(f"WORK_WEEKDAYS must name at least one weekday from 1 (Monday) to 7, not {value!r}")
    return tuple(sorted(days))


def parse_dates(name, value):
    """HOLIDAYS / MAKEUP_WORKDAYS → a sorted tuple of dates from comma-separated ISO dates."""
    if not isinstance(value, str):
        return tuple(sorted(value))
    try:
        return tuple(sorted({date.fromisoformat(p.strip()) for p in value.split(",") if p.strip()}))
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated dates like 2026-10-01,2026-10-02, not {value!r}")


CALENDAR_KEYS = ("WORK_WEEKDAYS", "HOLIDAYS", "MAKEUP_WORKDAYS")

SECRET_KEYS = (
    "SECRET_KEY",
    "WECHAT_APP_SECRET",
    "WECOM_SECRET",
    "WECOM_TOKEN",
    "WECOM_ENCODING_AES_KEY",
    "WECOM_ROBOT_KEY",
    "OSS_ACCESS_KEY_SECRET",
)


# What _derive adds; with the names _from_environment reads, these are our settings.
DERIVED = ("WECHAT_ENABLED", "WECOM_ENABLED", "OSS_ENABLED", "DEMO_LOGIN_ENABLED")


def describe(cfg):
    """Our settings in `cfg` (not Flask's or APIFlask's), safe to print: secrets replaced,
    the database password hidden."""
    ours = set(_from_environment()) | set(DERIVED)
    out = {}
    for key, value in cfg.items():
        if key not in ours:
            continue
        if key in SECRET_KEYS and value:
            value = "***"
        elif key in CALENDAR_KEYS:
            value = ",".join(str(v) for v in value)  # as the environment writes it
        elif key == "SCORECARD_WEIGHTS":
            value = ",".join(f"{k}={v}" for k, v in value.items())
        elif key == "SCORECARD_GRADE_BANDS":
            value = ",".join(f"{v:g}" for v in value)
        out[key] = value
    url = out.get("DATABASE_URL") or ""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        out["DATABASE_URL"] = f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return out
