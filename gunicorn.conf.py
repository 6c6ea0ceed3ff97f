"""gunicorn settings for `make run` and production; override with TRIAGE_WORKERS / TRIAGE_THREADS or GUNICORN_CMD_ARGS.

Worker model, chosen by measurement (`make bench`, README "Performance"): synchronous workers, one per core on
SQLite and one more on PostgreSQL. Every request here is short (live screens poll small fragments; nothing
streams), and sync workers served more than gthread workers (2 x 4 threads) for almost every operation. On
SQLite, one per core rather than more: with two per core the writes (pre-screens, triage) served a third less,
each worker's requests costing more CPU (a process holding the write lock was descheduled for another worker's
request), and a third worker on two cores served no more. On PostgreSQL a worker waits for the server at each
statement and for its commit's flush: a third worker on two cores filled that wait (pre-screens 0.10 -> 0.13 of
the floor, triage 0.15 -> 0.16), a fourth added nothing. Run gunicorn behind a buffering reverse proxy (nginx) in
production, as gunicorn advises for sync workers, so that slow phones cannot hold a worker.
"""

import multiprocessing
import os

bind = os.environ.get("TRIAGE_BIND", "127.0.0.1:8000")
_on_postgres = os.environ.get("TRIAGE_DATABASE_URL", "").startswith("postgresql")
workers = int(os.environ.get("TRIAGE_WORKERS", str(multiprocessing.cpu_count() + (1 if _on_postgres else 0))))
threads = int(os.environ.get("TRIAGE_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = "-"
# The default access log would print query strings; status-link tokens live in paths, not queries,
# and the format below leaves out the query string altogether.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
