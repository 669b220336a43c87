# UDL Notebook 11.3 (batch normalization) as an nbgrader course.
#   make grade   release, autograde every submission, feedback, grade table
#   make test    the test suite
# Both create the virtualenv from requirements.txt when it is missing or stale.

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# nbgrader runs helper programs (alembic) by name: the venv's bin must come first.
export PATH := $(BIN):$(PATH)
export PYDEVD_DISABLE_FILE_VALIDATION := 1
ASSIGNMENT := bn
STAMP := $(VENV)/.installed

.PHONY: all grade release autograde feedback report samples test clean

all: grade

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

grade: release autograde feedback report

release: $(STAMP)
	$(BIN)/python -m coursekit.sync
	$(BIN)/nbgrader generate_assignment $(ASSIGNMENT) --force

autograde: $(STAMP)
	$(BIN)/nbgrader autograde $(ASSIGNMENT) --force

feedback: $(STAMP)
	$(BIN)/nbgrader generate_feedback $(ASSIGNMENT) --force

report: $(STAMP)
	$(BIN)/python -m coursekit.report

# Rewrites the sample submissions (reference, blank, seed) after the release changes.
samples: $(STAMP)
	$(BIN)/python -m coursekit.samples

test: $(STAMP)
	$(BIN)/python -m pytest tests

clean:
	rm -rf gradebook.db grades.csv .pytest_cache
