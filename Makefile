# Two commands on a fresh machine: `make run` and `make test`. Everything else is here too.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export TRIAGE_SECURE_COOKIES ?= 0

.PHONY: run test test-postgres install install-dev translations db demo lint typecheck audit check bench clean serve

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/activate
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed translations
install-dev: $(VENV)/.installed-dev translations

translations: $(VENV)/.installed
	$(BIN)/pybabel compile --statistics -f -d translations 2>&1 | tail -n 2

instance/.secret_key:
	mkdir -p instance
	$(PYTHON) -c "import secrets; print(secrets.token_hex(32))" > $@
	chmod 600 $@

db: install instance/.secret_key
	TRIAGE_SECRET_KEY=$$(cat instance/.secret_key) $(FLASK) db upgrade

demo: db
	TRIAGE_SECRET_KEY=$$(cat instance/.secret_key) $(FLASK) demo

# Serve with gunicorn on http://127.0.0.1:8000 (plain HTTP on this machine only, so cookies
# are not marked Secure here; behind TLS set TRIAGE_SECURE_COOKIES=1).
run: demo
	@echo "Serving on http://127.0.0.1:8000  (demo logins above; Ctrl-C to stop)"
	TRIAGE_SECRET_KEY=$$(cat instance/.secret_key) $(BIN)/gunicorn --config gunicorn.conf.py wsgi:app

# On every core (pytest-xdist).
PYTEST := $(BIN)/pytest -q -n auto

test: install-dev
	$(PYTEST)

test-postgres: install-dev
	TRIAGE_TEST_DATABASE_URL=$(PG_TEST_URL) $(PYTEST) -m db

lint: install-dev
	$(BIN)/ruff check .

typecheck: install-dev
	$(BIN)/mypy triage
	$(BIN)/mypy --strict --follow-imports=silent triage/domain triage/workflow.py triage/services

# bandit over the code; pip-audit over the pinned requirements. pip-audit fails on a known vulnerability; when
# no vulnerability database is reachable (a machine that only reaches a package mirror) it says so loudly.
audit: install-dev
	$(BIN)/bandit -q -c pyproject.toml -r triage
	@out=$$($(BIN)/pip-audit -r requirements.txt --progress-spinner off 2>&1); status=$$?; \
	if [ $$status -ne 0 ]; then echo "$$out"; exit $$status; fi; \
	echo "$$out" | head -n 1; \
	if echo "$$out" | grep -q "could not be audited"; then \
	  echo "WARNING: pip-audit could not reach a vulnerability database: the requirements were NOT audited" >&2; fi

check: lint typecheck audit

bench: install-dev
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache translations/*/LC_MESSAGES/*.mo

# After adding or changing user-visible text: extract, merge into the catalogs, then translate the
# new empty msgstr entries in translations/zh/LC_MESSAGES/messages.po (tests fail on any left empty).
translations-update: $(VENV)/.installed
	$(BIN)/pybabel extract --no-wrap --no-location --sort-by-file -F babel.cfg -k _l -k lazy_gettext -o translations/messages.pot . >/dev/null
	$(BIN)/pybabel update --no-wrap --no-fuzzy-matching --ignore-obsolete -i translations/messages.pot -d translations -l zh
