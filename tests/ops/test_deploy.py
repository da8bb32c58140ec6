"""The deployment files, checked with the real tools rather than by reading them.

- docker-compose v1 renders docker-compose.yml with deploy/.env.example (``config``);
- cfn-lint checks the CloudFormation template; shellcheck and hadolint the scripts and the
  Dockerfile;
- a real nginx runs deploy/nginx/loyalty.conf (on high ports, under a scratch prefix, with a
  certificate made here by openssl) in front of the real app under gunicorn with
  deploy/gunicorn.conf.py, and is asked over real TLS what a browser would see.

The tools come from scripts/install_deploy_tools.sh (CI runs it; the session fixture runs it
when they are missing). A tool that is still missing fails the tests: nothing is skipped
for want of a tool. No Docker engine, MySQL server or AWS account is used: see
docs/deployment.md for what that leaves unchecked.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import re
import runpy
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT, production_env

DEPLOY = ROOT / "deploy"
TOOLS = ROOT / ".venv-deploy" / "bin"
# The compose venv's interpreter has PyYAML; .venv need not.
YAML_PYTHON = ROOT / ".venv-deploy" / "compose" / "bin" / "python"
INSTALL_SCRIPT = ROOT / "scripts" / "install_deploy_tools.sh"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
GR_SQL = DEPLOY / "mysql" / "init-gr.sql"
GR_SCRIPT = DEPLOY / "mysql" / "init-gr.sh"
GR_CNF = DEPLOY / "mysql" / "gr.cnf"
CFN_TEMPLATE = DEPLOY / "aws" / "loyalty-multiregion.yaml"
NGINX_DIR = DEPLOY / "nginx"
COLLECTOR = DEPLOY / "otel" / "collector.yaml"
AWS_REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")


def _nginx_binary() -> str | None:
    # Debian puts nginx in /usr/sbin, which a non-login PATH may lack.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def _missing_tools() -> list[str]:
    missing = [
        name
        for name in ("docker-compose", "cfn-lint", "shellcheck", "hadolint")
        if not (TOOLS / name).exists()
    ]
    if not YAML_PYTHON.exists():
        missing.append(str(YAML_PYTHON))
    if _nginx_binary() is None:
        missing.append("nginx")
    if shutil.which("openssl") is None:
        missing.append("openssl")
    return missing


@pytest.fixture(scope="session")
def deploy_tools() -> Path:
    if _missing_tools():
        subprocess.run(["bash", str(INSTALL_SCRIPT)], check=True, timeout=900)
    missing = _missing_tools()
    assert not missing, f"still missing after {INSTALL_SCRIPT.name}: {missing}"
    return TOOLS


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("timeout", 120)
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)


def _yaml_to_data(text: str) -> dict:
    result = _run([str(YAML_PYTHON), "-c", _YAML_TO_JSON], input=text)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


_YAML_TO_JSON = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"


# ------------------------------------------------------------------ docker-compose


def _compose(tools: Path, env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A bare environment: variables of the machine running the tests must not fill in
    # for what .env.example is supposed to provide.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(env_file.parent)}
    return _run(
        [
            str(tools / "docker-compose"),
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(env_file),
            *args,
        ],
        env=env,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def compose_config(deploy_tools: Path) -> dict:
    result = _compose(deploy_tools, ENV_EXAMPLE, "config")
    assert result.returncode == 0, result.stderr
    return _yaml_to_data(result.stdout)


def test_compose_config_renders_the_region_stack(compose_config: dict) -> None:
    services = compose_config["services"]
    assert set(services) == {
        "mysql-1",
        "mysql-2",
        "mysql-3",
        "gr-init",
        "migrate",
        "app",
        "mailer",
        "nginx",
        "otel-collector",
        "redis",
    }
    mailer = services["mailer"]
    assert mailer["command"][-4:] == ["mail", "send", "--watch", "--housekeeping"]
    assert "ports" not in mailer
    assert mailer["environment"]["LOYALTY_PUBLIC_BASE_URL"] == "https://loyalty.example.com"

    members = [services[f"mysql-{n}"] for n in (1, 2, 3)]
    assert all(m["image"] == "mysql:8.4" for m in members)
    server_ids = {arg for m in members for arg in m["command"] if arg.startswith("--server-id=")}
    assert len(server_ids) == 3
    for n, member in enumerate(members, start=1):
        mounts = member["volumes"]
        assert any(v.endswith(":/etc/mysql/conf.d/gr.cnf:ro") for v in mounts)
        assert any(v.endswith(":/docker-entrypoint-initdb.d/10-init-gr.sh:ro") for v in mounts)
        assert f"mysql-{n}-data:/var/lib/mysql:rw" in mounts
        assert f"--loose-group-replication-local-address=mysql-{n}:33061" in member["command"]
        assert "healthcheck" in member
        assert "ports" not in member, "MySQL and GR ports must stay off the host"

    gr_init = services["gr-init"]
    assert gr_init["entrypoint"][-1] == "start-group"
    assert {c["condition"] for c in gr_init["depends_on"].values()} == {"service_healthy"}
    assert services["migrate"]["command"] == ["flask", "--app", "webapp", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["gr-init"]["condition"] == (
        "service_completed_successfully"
    )

    app = services["app"]
    assert app["build"]["dockerfile"] == "deploy/Dockerfile"
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "ports" not in app
    env = app["environment"]
    assert env["LOYALTY_ENV"] == "production"
    assert env["LOYALTY_HTTPS"] == "1"
    assert env["LOYALTY_CLUSTER_KIND"] == "group_replication"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    # Every worker of the region counts sign-in attempts in the one Redis.
    assert env["LOYALTY_RATELIMIT_STORAGE_URI"] == "redis://redis:6379/0"
    assert app["depends_on"]["redis"]["condition"] == "service_healthy"
    redis = services["redis"]
    assert set(redis["networks"]) == {"backend"}
    assert "ports" not in redis
    assert "healthcheck" in redis
    for n in (1, 2, 3):
        assert f"@mysql-{n}:3306/loyalty" in env["LOYALTY_CLUSTER"]
    assert env["LOYALTY_CLUSTER"].startswith("us=mysql+pymysql://loyalty:change-me")

    nginx = services["nginx"]
    assert {(p["published"], p["target"]) for p in _ports(nginx)} == {(80, 80), (443, 443)}
    assert "tls-certs:/etc/nginx/certs:ro" in nginx["volumes"]
    assert "frontend" in nginx["networks"]
    assert "backend" not in nginx["networks"]

    assert compose_config["networks"]["backend"]["internal"] is True
    only_ports = [name for name, s in services.items() if "ports" in s]
    assert only_ports == ["nginx"]


def _ports(service: dict) -> list[dict]:
    """compose v1 prints ports as "80:80/tcp" strings or as mappings, depending on form."""
    ports = []
    for port in service["ports"]:
        if isinstance(port, dict):
            ports.append({"published": int(port["published"]), "target": int(port["target"])})
        else:
            published, target = port.split("/")[0].rsplit(":", 2)[-2:]
            ports.append({"published": int(published), "target": int(target)})
    return ports


def test_compose_refuses_to_start_without_secrets(deploy_tools: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _compose(deploy_tools, empty, "config")
    assert result.returncode != 0
    assert re.search(r"set \w+ in \.env", result.stderr), result.stderr


def test_env_example_holds_placeholders_not_secrets() -> None:
    values = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    secret_names = [k for k in values if re.search(r"PASSWORD|SECRET|_KEY$|INGESTION_KEY", k)]
    assert set(secret_names) >= {
        "MYSQL_ROOT_PASSWORD",
        "GR_RECOVERY_PASSWORD",
        "LOYALTY_DB_PASSWORD",
        "LOYALTY_SCHEMA_PASSWORD",
        "SECRET_KEY",
        "SIGNOZ_INGESTION_KEY",
    }
    for name in secret_names:
        assert values[name].startswith("change-me"), name
    for pair in values["JWT_KEYS"].split(","):
        kid, _, secret = pair.partition(":")
        assert kid
        assert secret.startswith("change-me")
        assert len(secret) >= 32


# ------------------------------------------------------------------ Group Replication


def _sql_section(name: str) -> str:
    text = GR_SQL.read_text()
    match = re.search(rf"^-- @section {name}\n(.*?)(?=^-- @section |\Z)", text, re.M | re.S)
    assert match, f"no section {name}"
    # Statements only, one per line, whitespace collapsed.
    lines = [ln for ln in match.group(1).splitlines() if not ln.lstrip().startswith("--")]
    return re.sub(r"\s+", " ", " ".join(lines))


def _position(sql: str, pattern: str) -> int:
    match = re.search(pattern, sql, re.I)
    assert match, f"{pattern!r} not found"
    return match.start()


def test_gr_bootstrap_section_turns_the_flag_on_starts_and_turns_it_off() -> None:
    sql = _sql_section("bootstrap")
    single_primary = _position(sql, r"SET GLOBAL group_replication_single_primary_mode = OFF;")
    everywhere = _position(
        sql, r"SET GLOBAL group_replication_enforce_update_everywhere_checks = ON;"
    )
    flag_on = _position(sql, r"SET GLOBAL group_replication_bootstrap_group = ON;")
    start = _position(sql, r"START GROUP_REPLICATION;")
    flag_off = _position(sql, r"SET GLOBAL group_replication_bootstrap_group = OFF;")
    assert max(single_primary, everywhere) < flag_on < start < flag_off


def test_gr_join_section_never_bootstraps() -> None:
    sql = _sql_section("join")
    assert "bootstrap_group" not in sql
    assert _position(sql, r"single_primary_mode = OFF") < _position(sql, r"START GROUP_REPLICATION")
    _position(sql, r"enforce_update_everywhere_checks = ON")


def test_gr_member_init_creates_users_locally_and_sets_the_recovery_channel() -> None:
    sql = _sql_section("member-init")
    log_off = _position(sql, r"SET SESSION sql_log_bin = 0;")
    recovery_user = _position(sql, r"CREATE USER IF NOT EXISTS 'gr_recovery'@'%'")
    grants = _position(sql, r"GRANT REPLICATION SLAVE, CONNECTION_ADMIN, BACKUP_ADMIN, ")
    app_user = _position(sql, r"CREATE USER IF NOT EXISTS '\{\{LOYALTY_DB_USER\}\}'@'%'")
    log_on = _position(sql, r"SET SESSION sql_log_bin = 1;")
    assert log_off < recovery_user < grants < log_on
    owner = _position(sql, r"CREATE USER IF NOT EXISTS '\{\{LOYALTY_SCHEMA_USER\}\}'@'%'")
    assert log_off < owner < app_user < log_on
    # Append-only: the app may read and insert; UPDATE/DELETE come per table from
    # `db upgrade`, never on the ledger. No DDL either: that is the owner's.
    schema, app = r"`\{\{LOYALTY_DB_NAME\}\}`\.\*", r"'\{\{LOYALTY_DB_USER\}\}'"
    assert re.findall(rf"GRANT ([A-Z ,]+) ON {schema} TO {app}", sql) == ["SELECT, INSERT"]
    _position(
        sql,
        r"CHANGE REPLICATION SOURCE TO SOURCE_USER = 'gr_recovery', "
        r"SOURCE_PASSWORD = '\{\{GR_RECOVERY_PASSWORD\}\}' "
        r"FOR CHANNEL 'group_replication_recovery';",
    )
    assert _position(sql, r"RESET BINARY LOGS AND GTIDS;") > log_on


def test_gr_cnf_sets_multi_primary_read_committed_and_durability() -> None:
    lines = [
        tuple(part.strip().strip('"') for part in line.split("=", 1))
        for line in GR_CNF.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    ]
    settings = dict(lines)
    plugins = [value for key, value in lines if key == "plugin_load_add"]
    assert plugins == ["group_replication.so", "mysql_clone.so"]
    assert settings["transaction_isolation"] == "READ-COMMITTED"
    assert settings["loose-group_replication_single_primary_mode"] == "OFF"
    assert settings["loose-group_replication_enforce_update_everywhere_checks"] == "ON"
    assert settings["loose-group_replication_start_on_boot"] == "OFF"
    assert settings["innodb_flush_log_at_trx_commit"] == "1"
    assert settings["gtid_mode"] == "ON"


def _render(section: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GR_SQL_FILE": str(GR_SQL)}
    return _run(["bash", str(GR_SCRIPT), "render", section], env={**base, **env})


def test_init_gr_script_renders_member_init_with_masked_secrets() -> None:
    result = _render(
        "member-init",
        GR_RECOVERY_PASSWORD="s3cret-recovery",
        LOYALTY_DB_USER="loyalty_app",
        LOYALTY_DB_PASSWORD="s3cret-app",
        LOYALTY_SCHEMA_PASSWORD="s3cret-owner",
    )
    assert result.returncode == 0, result.stderr
    assert "{{" not in result.stdout
    assert "s3cret" not in result.stdout
    assert "CREATE USER IF NOT EXISTS 'loyalty_app'@'%' IDENTIFIED BY '********';" in result.stdout
    assert "CREATE USER IF NOT EXISTS 'loyalty_owner'@'%' IDENTIFIED BY '********';" in (
        result.stdout
    )
    assert "CREATE DATABASE IF NOT EXISTS `loyalty`" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOYALTY_DB_USER": "app", "LOYALTY_DB_PASSWORD": "x"}, "GR_RECOVERY_PASSWORD is not set"),
        (
            {
                "GR_RECOVERY_PASSWORD": "x",
                "LOYALTY_DB_USER": "a'; DROP",
                "LOYALTY_DB_PASSWORD": "x",
            },
            "LOYALTY_DB_USER must match",
        ),
    ],
)
def test_init_gr_script_refuses_missing_or_unsafe_values(env: dict, message: str) -> None:
    result = _render("member-init", **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_shell_scripts_pass_shellcheck(deploy_tools: Path) -> None:
    result = _run([str(deploy_tools / "shellcheck"), str(GR_SCRIPT), str(INSTALL_SCRIPT)])
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ image, AWS, telemetry


def test_dockerfile_passes_hadolint(deploy_tools: Path) -> None:
    result = _run([str(deploy_tools / "hadolint"), str(DEPLOY / "Dockerfile")])
    assert result.returncode == 0, result.stdout + result.stderr
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert re.search(r"^USER 10001", dockerfile, re.M)
    assert 'CMD ["gunicorn", "--config", "deploy/gunicorn.conf.py"]' in dockerfile


def test_cloudformation_template_passes_cfn_lint(deploy_tools: Path) -> None:
    result = _run(
        [
            str(deploy_tools / "cfn-lint"),
            "--include-checks",
            "I",
            "--regions",
            *AWS_REGIONS,
            "--",
            str(CFN_TEMPLATE),
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_cloudformation_keeps_mysql_ports_private() -> None:
    # cfn-lint knows the schema, not our intent: 3306/33061 must never face the internet.
    template = CFN_TEMPLATE.read_text()
    for port in ("3306", "33061"):
        blocks = re.findall(rf"FromPort: {port}\b.*?(?=\n\s+- |\n\s*\n)", template, re.S)
        assert blocks, port
        assert not any("0.0.0.0/0" in block for block in blocks), port
    assert "HealthCheckPath: /readyz" in template
    assert "ResourcePath: /readyz" in template


def test_cloudformation_gives_the_app_a_shared_limiter_store() -> None:
    """Without LOYALTY_RATELIMIT_STORAGE_URI the production profile refuses to start; with
    a per-task memory store each worker would count sign-ins on its own."""
    template = CFN_TEMPLATE.read_text()
    assert "Type: AWS::ElastiCache::ReplicationGroup" in template
    assert re.search(r"Name: LOYALTY_RATELIMIT_STORAGE_URI\n\s+Value: !Sub \"rediss://\$\{"
                     r"LimiterRedis\.PrimaryEndPoint\.Address\}", template)
    blocks = re.findall(r"FromPort: 6379\b.*?(?=\n\s+- |\n\s*\n)", template, re.S)
    assert blocks
    assert all("SourceSecurityGroupId: !Ref AppSecurityGroup" in block for block in blocks)


def test_collector_pipelines_use_only_defined_components(compose_config: dict) -> None:
    config = _yaml_to_data(COLLECTOR.read_text())
    for name, pipeline in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline[kind]) <= set(config[kind]), (name, kind)
        assert pipeline["processors"][0] == "memory_limiter", name
        assert pipeline["processors"][-1] == "batch", name
        assert "resource" in pipeline["processors"], name
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    region = [a for a in config["processors"]["resource"]["attributes"] if a["value"]]
    assert {"key": "loyalty.region", "value": "${env:LOYALTY_REGION}", "action": "upsert"} in region
    # Every ${env:NAME} the collector reads is set on its container.
    wanted = set(re.findall(r"\$\{env:(\w+)\}", json.dumps(config)))
    provided = set(compose_config["services"]["otel-collector"]["environment"])
    assert wanted <= provided, wanted - provided


def test_gunicorn_config_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GUNICORN_WORKERS", "WEB_CONCURRENCY", "GUNICORN_THREADS", "HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PORT", "9123")
    settings = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert settings["bind"] == ["0.0.0.0:9123"]
    assert settings["workers"] == 2 * len(os.sched_getaffinity(0))
    assert settings["worker_class"] == "gthread"
    assert settings["threads"] == 8
    assert settings["preload_app"] is False
    assert settings["wsgi_app"] == "webapp:create_app()"
    assert settings["graceful_timeout"] < settings["timeout"]
    assert "%(M)s" in settings["access_log_format"]

    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    monkeypatch.delenv("PORT")
    settings = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert settings["workers"] == 3
    assert settings["bind"] == ["0.0.0.0:8000"]


# ------------------------------------------------------------------ live nginx + TLS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing listened on {port} within {seconds} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class LiveStack:
    https_port: int
    http_port: int
    cafile: Path
    access_log: Path  # gunicorn's
    env: dict[str, str]  # the app's: flask commands against its database


def _site_conf(upstream_port: int, https_port: int, http_port: int, certs: Path, scratch: Path):
    """deploy/nginx/loyalty.conf with only its host-specific lines pointed at test values."""
    site = (NGINX_DIR / "loyalty.conf").read_text()
    replacements = {
        "server app:8000;": f"server 127.0.0.1:{upstream_port};",
        "listen 80 default_server;": f"listen 127.0.0.1:{http_port} default_server;",
        "listen [::]:80 default_server;": "",
        "listen 443 ssl http2 default_server;": (
            f"listen 127.0.0.1:{https_port} ssl http2 default_server;"
        ),
        "listen [::]:443 ssl http2 default_server;": "",
        "/etc/nginx/certs/": f"{certs}/",
        "root /srv/loyalty;": f"root {ROOT};",
        "root /var/www/acme;": f"root {scratch / 'acme'};",
        "include loyalty/": f"include {NGINX_DIR / 'snippets'}/",
    }
    for old, new in replacements.items():
        assert old in site, f"loyalty.conf no longer contains {old!r}: update this test"
        site = site.replace(old, new)
    return site


def _start_upstream(
    scratch: Path, port: int
) -> tuple[subprocess.Popen, Path, Path, dict[str, str]]:
    """The real app (deploy/gunicorn.conf.py's ``webapp:create_app()``) on a migrated
    SQLite database. No stand-in: if the factory moved or the app cannot boot, gunicorn
    exits and the fixture fails with its log."""
    log = scratch / "upstream.log"
    access_log = scratch / "gunicorn-access.log"
    env = production_env(
        scratch / "loyalty.db",
        # One worker: its memory is the whole limiter store (tests/test_sign_in_limits.py
        # runs the shared Redis one).
        LOYALTY_RATELIMIT_STORAGE_URI="memory://",
        LOYALTY_HTTPS="1",
        PORT=str(port),
        FORWARDED_ALLOW_IPS="127.0.0.1",
        GUNICORN_WORKERS="1",
        GUNICORN_GRACEFUL_TIMEOUT="5",
        GUNICORN_ACCESSLOG=str(access_log),
    )
    # What the compose stack's `migrate` service runs, so /readyz can answer 200.
    migrated = _run([sys.executable, "-m", "flask", "--app", "webapp", "db", "upgrade"],
                    cwd=ROOT, env=env)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    command = [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py"]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    return process, log, access_log, env


@pytest.fixture(scope="module")
def live_stack(deploy_tools: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    scratch = tmp_path_factory.mktemp("nginx")
    certs = scratch / "certs"
    certs.mkdir()
    for sub in ("tmp", "acme"):
        (scratch / sub).mkdir()
    made = _run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(certs / "privkey.pem"),
            "-out",
            str(certs / "fullchain.pem"),
        ]
    )
    assert made.returncode == 0, made.stderr

    upstream_port, https_port, http_port = _free_port(), _free_port(), _free_port()
    site = scratch / "loyalty.conf"
    site.write_text(_site_conf(upstream_port, https_port, http_port, certs, scratch))
    conf = scratch / "nginx.conf"
    template = (NGINX_DIR / "nginx-test.conf.template").read_text()
    values = {
        "{{PREFIX}}": str(scratch),
        "{{USER_DIRECTIVE}}": "user root;" if os.geteuid() == 0 else "",
        "{{MIME_TYPES}}": "/etc/nginx/mime.types",
        "{{SITE_CONF}}": str(site),
    }
    for placeholder, value in values.items():
        template = template.replace(placeholder, value)
    assert "{{" not in template
    conf.write_text(template)

    nginx = _nginx_binary()
    nginx_args = [nginx, "-p", str(scratch), "-c", str(conf), "-e", str(scratch / "error.log")]
    checked = _run([*nginx_args, "-t"])
    assert checked.returncode == 0, checked.stderr

    upstream, upstream_log, access_log, env = _start_upstream(scratch, upstream_port)
    nginx_log = scratch / "nginx.out"
    try:
        _wait_for_port(upstream_port, upstream, upstream_log)
        with nginx_log.open("w") as out:
            server = subprocess.Popen(nginx_args, stdout=out, stderr=out)
        try:
            _wait_for_port(https_port, server, nginx_log)
            yield LiveStack(
                https_port=https_port,
                http_port=http_port,
                cafile=certs / "fullchain.pem",
                access_log=access_log,
                env=env,
            )
        finally:
            _stop(server)
    finally:
        _stop(upstream)


def _tls_context(stack: LiveStack) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(stack.cafile))


def _handshake(stack: LiveStack, context: ssl.SSLContext) -> tuple[str | None, str | None, str]:
    with (
        socket.create_connection(("127.0.0.1", stack.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cipher = tls.cipher()
        return tls.version(), tls.selected_alpn_protocol(), cipher[0] if cipher else ""


def _request(
    stack: LiveStack, path: str, *, https: bool = True, headers: dict | None = None,
    method: str = "GET", body: bytes | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    if https:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", stack.https_port, context=_tls_context(stack), timeout=10
        )
    else:
        conn = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def test_tls13_is_negotiated_and_http2_offered_by_alpn(live_stack: LiveStack) -> None:
    context = _tls_context(live_stack)
    context.set_alpn_protocols(["h2", "http/1.1"])
    version, alpn, _ = _handshake(live_stack, context)
    assert version == "TLSv1.3"
    assert alpn == "h2"


def test_tls12_accepts_forward_secret_aead_and_refuses_cbc(live_stack: LiveStack) -> None:
    modern = _tls_context(live_stack)
    modern.maximum_version = ssl.TLSVersion.TLSv1_2
    version, _, cipher = _handshake(live_stack, modern)
    assert version == "TLSv1.2"
    assert cipher.startswith("ECDHE-"), cipher
    assert "GCM" in cipher or "CHACHA20" in cipher, cipher

    legacy = _tls_context(live_stack)
    legacy.maximum_version = ssl.TLSVersion.TLSv1_2
    legacy.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
    with pytest.raises(ssl.SSLError):
        _handshake(live_stack, legacy)


def test_https_proxies_to_the_app_with_one_hsts_header(live_stack: LiveStack) -> None:
    status, headers, body = _request(live_stack, "/healthz")
    assert status == 200
    assert isinstance(json.loads(body), dict)
    hsts = headers.get_all("Strict-Transport-Security")
    assert hsts == ["max-age=63072000; includeSubDomains"]
    assert headers.get_all("X-Content-Type-Options") == ["nosniff"]
    assert headers["Server"] == "nginx"  # no version (server_tokens off)


def test_plain_http_redirects_to_https(live_stack: LiveStack) -> None:
    status, headers, _ = _request(live_stack, "/card?from=test", https=False)
    assert status == 301
    assert headers["Location"] == "https://127.0.0.1/card?from=test"


def test_static_files_are_gzipped_and_cached_for_a_year(live_stack: LiveStack) -> None:
    css = sorted((ROOT / "static").rglob("*.css"))
    assert css, "static/ has no stylesheet to fetch"
    path = "/" + css[0].relative_to(ROOT).as_posix()
    status, headers, body = _request(live_stack, path, headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert len(body) < css[0].stat().st_size
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # The location's own add_header must not have dropped the server-level ones.
    assert headers.get_all("Strict-Transport-Security") == ["max-age=63072000; includeSubDomains"]


def test_json_from_the_app_is_gzipped(live_stack: LiveStack) -> None:
    # The OpenAPI document: JSON the app itself leaves uncompressed (its
    # COMPRESS_MIMETYPES), large enough for nginx's gzip_min_length.
    status, headers, body = _request(live_stack, "/api/v1/openapi.json",
                                 headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in headers.get("Vary", "")
    document = json.loads(gzip.decompress(body))
    assert document["openapi"] == "3.1.0"
    assert len(body) < len(json.dumps(document))
    # And the readiness answer the ALB reads is the app's, and ready (not a 503).
    status, headers, body = _request(live_stack, "/readyz")
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    assert isinstance(json.loads(body), dict)


def _flask(stack: LiveStack, *args: str) -> None:
    done = _run([sys.executable, "-m", "flask", "--app", "webapp", *args], cwd=ROOT, env=stack.env)
    assert done.returncode == 0, done.stdout + done.stderr


def test_token_answers_are_not_compressed(live_stack: LiveStack) -> None:
    # BREACH: a compressed answer that carries a secret next to input the client chose
    # leaks the secret through its length. The app leaves JSON uncompressed for that
    # reason; nginx must not compress what the app left alone on the token routes.
    _flask(live_stack, "stores", "create", "IE-DUB-77", "--name", "Breach test",
           "--region", "ie", "--currency", "EUR", "--minor-per-coin", "100")
    _flask(live_stack, "staff", "create", "breach@example.com", "--store", "IE-DUB-77",
           "--password", "a long test password 77")
    body = json.dumps({"email": "breach@example.com", "password": "a long test password 77"})
    status, headers, answer = _request(
        live_stack, "/api/v1/auth/token", method="POST", body=body.encode(),
        headers={"Accept-Encoding": "gzip", "Content-Type": "application/json"})
    assert status == 200, answer
    assert "Content-Encoding" not in headers
    tokens = json.loads(answer)
    assert tokens["access_token"]
    assert tokens["refresh_token"]
    assert len(answer) > 256  # long enough that gzip_min_length would not spare it


def test_app_sees_nginx_forwarded_headers_not_the_clients(live_stack: LiveStack) -> None:
    forged = "203.0.113.9"
    status, _, _ = _request(live_stack, "/healthz?probe=xff", headers={"X-Forwarded-For": forged})
    assert status == 200
    deadline = time.monotonic() + 5
    line = ""
    while time.monotonic() < deadline and not line:
        line = next(
            (ln for ln in live_stack.access_log.read_text().splitlines() if "probe=xff" in ln), ""
        )
        time.sleep(0.05)
    assert line, "gunicorn logged no access line"
    # access_log_format: '<x-forwarded-for> <peer> "<request>" <status> <bytes> <ms>ms ... rid=<id>'
    assert line.startswith("127.0.0.1 127.0.0.1 "), line
    assert forged not in line
    assert re.search(r" 200 \d+ \d+ms ", line), line
    assert re.search(r"rid=[0-9a-f]{32}$", line), line


def test_live_upstream_is_the_real_app(live_stack: LiveStack) -> None:
    """The TLS tests above ran against gunicorn serving the app: a page only the app
    renders, with the app's own headers, came through nginx."""
    status, headers, body = _request(live_stack, "/login")  # no Accept-Encoding: plain
    assert status == 200
    assert 'name="csrf_token"' in body.decode()
    assert "default-src" in headers["Content-Security-Policy"]
    assert live_stack.access_log.exists()
