"""WSGI entry point: gunicorn wsgi:app, flask --app wsgi ..."""

from triage import create_app

app = create_app()
