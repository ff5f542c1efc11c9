# Two commands for a fresh clone: `make run` (the whole stack on this machine) and `make test`.
# The install is stamped, so a second `make test` or `make run` reuses the venv as it is.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.acceso-installed
ARGS ?=
# Test processes per pass: most tests wait on Temporal, SMTP or a child process, so three
# share two cores well.
TEST_WORKERS ?= 3
PYTEST := $(BIN)/pytest -p no:cacheprovider -q
REPORTS := var/test-reports

.PHONY: run test test-fast test-postgres test-system test-faults install lint translations histories screenshots bench

run: $(STAMP)
	$(BIN)/acceso dev $(ARGS)

# Every test: ruff, the fast tier on SQLite, the dialect-sensitive tests again on a throwaway
# PostgreSQL 15 cluster, the system tier (spawned stacks, the install recipe, browsers); then the
# 25 slowest tests of the three passes.
test: $(STAMP)
	rm -rf $(REPORTS)
	$(MAKE) --no-print-directory lint test-fast test-postgres test-system
	$(BIN)/python scripts/slowest_tests.py $(REPORTS)/*.xml

# What to run between edits: everything but the system tier, on SQLite (about two minutes).
test-fast: $(STAMP)
	$(PYTEST) -n $(TEST_WORKERS) -m "not system and not postgres" --junitxml=$(REPORTS)/sqlite.xml

# Tests marked `dialects` (SQL that differs, concurrency, claims, rate limits, migrations) and
# `postgres`, on PostgreSQL: the rest of the suite would only repeat what SQLite proved.
test-postgres: $(STAMP)
	$(PYTEST) -n $(TEST_WORKERS) --postgres -m "(dialects or postgres) and not system" --junitxml=$(REPORTS)/postgres.xml

# Whole processes spawned (acceso dev, gunicorn, the installed wheel on PostgreSQL) and browser
# walks, a module per test process; then the system tests marked `dialects` on PostgreSQL.
test-system: $(STAMP)
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile -m system --junitxml=$(REPORTS)/system.xml
	$(PYTEST) --postgres -m "system and dialects" --junitxml=$(REPORTS)/system-postgres.xml

# Batches of registrations while workers, web workers, SMTP and Temporal are killed (a few minutes).
test-faults: $(STAMP)
	ACCESO_FAULTS=1 $(BIN)/pytest -p no:cacheprovider -q tests/faults

# Every figure of issue 23 against its goal in one command: the front door, registration's CPU,
# history and latency, worker memory, swept tables, scale-out (a few minutes; ARGS="--postgres").
bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# Re-extract the Spanish source strings and merge them into each catalog; translate the new empty msgstr entries.
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o portal/locale/messages.pot --no-location --ignore-dirs=".venv var tests bench build docs" . \
		&& $(BIN)/pybabel update -i portal/locale/messages.pot -d portal/locale --no-fuzzy-matching --ignore-obsolete

# Re-record tests/histories (replayed by tests/test_replay.py) from real runs of the workflows;
# see docs/operations.md, "Changing workflow code safely", before committing the result.
histories: $(STAMP)
	$(BIN)/python scripts/record_histories.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

# Screenshots of each portal's main pages at 1280 and 375 px, both languages, into var/screenshots
# (not in git) for a person to review; headless Chromium, no Temporal needed.
screenshots: $(STAMP)
	rm -rf var/screenshots
	ACCESO_SCREENSHOTS=$(CURDIR)/var/screenshots $(BIN)/pytest -p no:cacheprovider -q tests/test_screenshots.py
	@echo "screenshots in var/screenshots"
