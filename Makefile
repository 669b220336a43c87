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

SANDBOX := /usr/bin/bwrap

.PHONY: all grade release autograde feedback report samples test clean

all: grade

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# Student code is graded inside bubblewrap (coursekit/sandbox.py); install it once.
$(SANDBOX):
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; \
	  else \
	    echo "The grading sandbox needs bubblewrap: sudo apt-get install bubblewrap"; exit 1; \
	  fi; }

# Feedback and the grade table are written even when some submissions need attention;
# the exit status still says so.
grade: release
	@status=0; $(MAKE) --no-print-directory autograde || status=1; \
	$(MAKE) --no-print-directory feedback || status=1; \
	$(MAKE) --no-print-directory report || status=1; \
	if [ $$status != 0 ]; then echo "Some submissions need attention: see above and grades.csv."; fi; \
	exit $$status

release: $(STAMP)
	$(BIN)/python -m coursekit.sync
	$(BIN)/nbgrader generate_assignment $(ASSIGNMENT) --force

autograde: $(STAMP) $(SANDBOX)
	$(BIN)/nbgrader autograde $(ASSIGNMENT) --force

feedback: $(STAMP)
	$(BIN)/nbgrader generate_feedback $(ASSIGNMENT) --force

report: $(STAMP)
	$(BIN)/python -m coursekit.report

# Rewrites the sample submissions (reference, blank, seed) after the release changes.
samples: $(STAMP)
	$(BIN)/python -m coursekit.samples

test: $(STAMP) $(SANDBOX)
	$(BIN)/python -m pytest tests

clean:
	rm -rf gradebook.db grades.csv .pytest_cache
