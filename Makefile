# Two commands for a fresh clone: `make run` (the whole stack on this machine) and `make test`.
# The install is stamped, so a second `make test` or `make run` reuses the venv as it is.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.acceso-installed
ARGS ?=

.PHONY: run test test-faults install lint translations histories screenshots

run: $(STAMP)
	$(BIN)/acceso dev $(ARGS)

test: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/pytest -p no:cacheprovider -q
	$(BIN)/pytest -p no:cacheprovider -q --postgres

# Batches of registrations while workers, web workers, SMTP and Temporal are killed (a few minutes).
test-faults: $(STAMP)
	ACCESO_FAULTS=1 $(BIN)/pytest -p no:cacheprovider -q tests/faults

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# Re-extract the Spanish source strings and merge them into each catalog; translate the new empty msgstr entries.
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o portal/locale/messages.pot --no-location --ignore-dirs=".venv var tests bench build docs" . \
		&& $(BIN)/pybabel update -i portal/locale/messages.pot -d portal/locale --no-fuzzy-matching

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
