"""The production artifacts run the README's commands: the Procfile (honcho), deploy/docker-compose.yml
and deploy/systemd/. honcho starts the whole box against MySQL and Redis; the README's database users
are enough for the migrations and for the running app."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import peewee
import pymysql
import pytest
import requests
import yaml

from app.extensions import db
from tests.helpers import SECRET

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
README = (ROOT / "README.md").read_text()
VENV_BIN = "/srv/waixie/.venv/bin/"  # where the systemd units find the commands


def readme_block(marker):
    """The code block right after the README's `<!-- marker… -->` comment."""
    match = re.search(rf"<!-- {marker}[^>]*-->\n```\w*\n(.*?)```", README, re.S)
    assert match, f"README has no block marked {marker}"
    return match.group(1)


def readme_commands():
    """process role → the README's production command (comments after `  #` dropped)."""
    roles = {"flask --app wsgi db upgrade": "migrate", "gunicorn": "web", "rq worker": "worker", "rq cron": "cron"}
    commands = {}
    for line in readme_block("production-commands").splitlines():
        command = re.split(r"\s+#", line, maxsplit=1)[0].strip()
        role = next(role for prefix, role in roles.items() if command.startswith(prefix))
        commands[role] = command
    assert set(commands) == {"migrate", "web", "worker", "cron"}
    return commands


def procfile():
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


def test_the_procfile_runs_the_readme_commands():
    commands = readme_commands()
    assert procfile() == {role: commands[role] for role in ("web", "worker", "cron")}


def test_docker_compose_runs_the_readme_commands_against_mysql_and_redis():
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    services = compose["services"]
    commands = readme_commands()

    for role in ("migrate", "web", "worker", "cron"):
        assert services[role]["command"] == commands[role], role
    assert services["db"]["image"].startswith(("mariadb:", "mysql:")) and services["redis"]["image"].startswith("redis:")
    for role in ("web", "worker", "cron"):  # the schema is upgraded before any of them starts
        assert services[role]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[role]["environment"]["DATABASE_URL"].startswith("mysql+pool://waixie_app:")
        assert services[role]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert services["migrate"]["environment"]["DATABASE_URL"].startswith("mysql://waixie_migrate:")
    assert "deploy" not in services["cron"] and "scale" not in services["cron"]  # exactly one cron


def test_the_systemd_units_run_the_readme_commands():
    commands = readme_commands()
    units = {"web": "waixie-web.service", "worker": "waixie-worker@.service", "cron": "waixie-cron.service"}
    for role, name in units.items():
        text = (ROOT / "deploy" / "systemd" / name).read_text()
        settings = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
        assert settings["ExecStart"].startswith(VENV_BIN), name
        assert settings["ExecStart"].removeprefix(VENV_BIN) == commands[role], name
        assert settings["WorkingDirectory"] == "/srv/waixie" and settings["EnvironmentFile"] == "/etc/waixie/waixie.env"
        assert settings["User"] == "waixie" and settings["Restart"] == "always"


def test_the_env_example_names_only_real_settings():
    from app.config import DERIVED, _from_environment

    names = {line.split("=", 1)[0] for line in (ROOT / "deploy" / "waixie.env.example").read_text().splitlines()
             if line and not line.startswith("#")}
    assert names - {"TZ", "PORT"} <= set(_from_environment()) - set(DERIVED)
    assert {"APP_ENV", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL", "OSS_BUCKET"} <= names


# --- honcho starts the box ---------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_honcho_starts_web_worker_and_cron_against_mysql_and_redis(backend, tmp_path):
    """Bounded: 60 s for the box to come up, 30 s for it to stop."""
    if backend["name"] != "mysql":
        pytest.skip("production runs on MySQL and Redis")
    port = free_port()
    settings = {"APP_ENV": "production", "SECRET_KEY": SECRET, "DATABASE_URL": backend["config"]["DATABASE_URL"],
                "REDIS_URL": backend["config"]["REDIS_URL"], "PHOTO_DIR": str(tmp_path / "photos"),
                "TZ": "Asia/Shanghai", "PORT": str(port)}
    env_file = tmp_path / "production.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "WECOM_", "OSS_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"  # honcho's shell finds the venv's gunicorn and rq
    log = tmp_path / "honcho.log"
    with open(log, "w") as out:
        honcho = subprocess.Popen([BIN / "honcho", "-e", str(env_file), "-f", "Procfile", "start", "--no-colour"],
                                  cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        health, deadline = None, time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if health.ok and health.json()["workers"] and health.json()["cron"]["jobs"]:
                    break
            except requests.RequestException:  # not listening yet, or its workers still booting
                pass
            assert honcho.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        assert health is not None and health.status_code == 200, log.read_text()[-3000:]
        body = health.json()
        assert body["checks"] == {"database": "ok", "redis": "ok", "migrations": "ok"}
        assert body["workers"][0]["queues"] == ["notify", "media"]  # the worker is up
        assert body["cron"]["jobs"], log.read_text()[-3000:]  # the cron enqueued, the worker ran a periodic job
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        try:
            honcho.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait()
    output = log.read_text()
    assert "Traceback" not in output, output[-3000:]


# --- the README's database users ---------------------------------------------------------------------------

def test_the_readme_database_users_can_migrate_and_run_the_app(backend, make_app, tmp_path):
    if backend["name"] != "mysql":
        pytest.skip("MySQL users")
    suffix = uuid.uuid4().hex[:8]
    names = {"waixie_app": f"wx_app_{suffix}", "waixie_migrate": f"wx_mig_{suffix}", "waixie": f"wx_users_{suffix}",
             "APP_PASSWORD": f"app-{suffix}", "MIGRATE_PASSWORD": f"mig-{suffix}"}
    statements = readme_block("database-users")
    for name, ours in names.items():
        statements = re.sub(rf"\b{name}\b", ours, statements)
    server = urlparse(os.environ.get("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306"))
    host, port = server.hostname, server.port or 3306
    admin = pymysql.connect(host=host, port=port, user=server.username or "root", password=server.password or "",
                            autocommit=True)
    try:
        with admin.cursor() as cur:
            for statement in filter(None, (s.strip() for s in statements.split(";"))):
                cur.execute(statement)

        migrate_url = f"mysql://{names['waixie_migrate']}:{names['MIGRATE_PASSWORD']}@{host}:{port}/{names['waixie']}"
        app_url = f"mysql+pool://{names['waixie_app']}:{names['APP_PASSWORD']}@{host}:{port}/{names['waixie']}"
        env = {**os.environ, "APP_ENV": "test", "SECRET_KEY": SECRET, "LOG_FORMAT": "text"}
        upgrade = subprocess.run([BIN / "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, capture_output=True,
                                 text=True, timeout=120, env={**env, "DATABASE_URL": migrate_url})
        assert upgrade.returncode == 0, upgrade.stderr

        app = make_app(DATABASE_URL=app_url)  # the runtime user: rows only
        client = app.test_client()
        assert client.get("/healthz").json["checks"]["migrations"] == "ok"
        with app.app_context():
            runner = app.test_cli_runner()
            assert runner.invoke(args=["create-staff", "boss", "--role", "manager", "--password-env", "PW"],
                                 env={"PW": "long-enough-pw"}).exit_code == 0
        login = client.post("/api/v1/auth/login", json={"username": "boss", "password": "long-enough-pw"})
        assert login.status_code == 200
        created = client.post("/api/v1/suppliers", json={"code": "SUP-1", "name": "苏州精工冲压厂"})
        assert created.status_code == 201, created.json
        with pytest.raises(peewee.OperationalError, match="denied"), db.connection_context():
            db.execute_sql("CREATE TABLE sneaky (id INT)")

        if shutil.which("mysqldump"):  # the README's backup command works for the migration user
            dump = subprocess.run(["mysqldump", "--single-transaction", "--no-tablespaces", "--routines", "--triggers",
                                   "--default-character-set=utf8mb4", "-h", host, "-P", str(port),
                                   "-u", names["waixie_migrate"], f"-p{names['MIGRATE_PASSWORD']}", names["waixie"]],
                                  capture_output=True, text=True, timeout=60)
            assert dump.returncode == 0 and "CREATE TABLE `task`" in dump.stdout, dump.stderr
    finally:
        db.close()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{names['waixie']}`")
            for user in (names["waixie_app"], names["waixie_migrate"]):
                cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.close()
