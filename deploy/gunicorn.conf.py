"""Production gunicorn settings: ``gunicorn -c deploy/gunicorn.conf.py``.

Every knob reads an environment variable first, so the container, a systemd unit and the
test in ``tests/ops/test_deploy.py`` share this one file and differ only in their environment.
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _cpus() -> int:
    # The CPUs this process may run on (a container's cpuset), not the host's count.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


wsgi_app = "webapp:create_app()"

# Inside a container the app must listen on every interface for nginx to reach it; the
# port is never published, only nginx's are.
bind = [f"{os.environ.get('HOST', '0.0.0.0')}:{_int('PORT', 8000)}"]  # noqa: S104

# Threads, not processes, carry the concurrency: a commit that waits ~200 ms for a
# cross-region quorum parks one thread while the other seven keep serving.
worker_class = "gthread"
workers = _int("GUNICORN_WORKERS", _int("WEB_CONCURRENCY", 2 * _cpus()))
threads = _int("GUNICORN_THREADS", 8)

# The app's own DB budget (connect 2 s, read/write 10 s, a bounded number of retries) ends
# a request well before this; the timeout only catches a worker that is truly stuck.
timeout = _int("GUNICORN_TIMEOUT", 60)
# On SIGTERM, let in-flight earns/redeems finish before the container is killed
# (docker stop waits 10 s by default: compose sets stop_grace_period above this).
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Longer than the idle timeout of the proxy in front (nginx 60 s, AWS ALB 60 s), so the
# proxy, not gunicorn, closes idle keep-alive connections; otherwise a request sent on a
# connection gunicorn just closed comes back as a 502.
keepalive = _int("GUNICORN_KEEPALIVE", 75)

# Recycle workers now and then so a slow leak cannot grow without bound; the jitter keeps
# them from restarting together.
max_requests = _int("GUNICORN_MAX_REQUESTS", 50000)  # a restart costs ~0.7 s of CPU
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 5000)

# Each worker builds its own app: its own DB engines, health-probe thread and OpenTelemetry
# exporter. Preloading would create those before fork and share sockets and threads that
# do not survive it.
preload_app = False

# Only these peers may set X-Forwarded-Proto/-For (nginx on the compose network, the ALB
# in the VPC). Gunicorn reads FORWARDED_ALLOW_IPS itself too; this keeps the default
# explicit.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# The heartbeat file lives in memory: on a container's overlay disk a slow fsync can make
# the arbiter think a healthy worker hung.
_SHM = "/dev/shm"  # noqa: S108 -- gunicorn creates its own private file inside
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None

accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
errorlog = os.environ.get("GUNICORN_ERRORLOG", "-")
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# %(M)s is the request time in milliseconds; rid ties a line to nginx's $request_id.
access_log_format = (
    '%({x-forwarded-for}i)s %(h)s "%(r)s" %(s)s %(b)s %(M)sms '
    '"%(f)s" "%(a)s" rid=%({x-request-id}i)s'
)

# gunicorn's control socket (for `gunicornc`) defaults to one path per $HOME: two servers
# on one host would fight over it, and the image's user has no writable home. Off unless
# an operator names a path.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket

# Large headers or request lines are either attacks or bugs; the body limit is the app's.
limit_request_line = 4094
limit_request_fields = 100
