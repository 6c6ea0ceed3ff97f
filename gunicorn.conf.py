"""gunicorn settings for `make run` and production; override with GUNICORN_CMD_ARGS."""

import os

bind = os.environ.get("TRIAGE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("TRIAGE_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("TRIAGE_THREADS", "4"))
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = "-"
# The default access log would print query strings; status-link tokens live in paths, not queries,
# and the format below leaves out the query string altogether.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
