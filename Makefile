# UDL Notebook 11.3 (batch normalization) as an nbgrader course.
#   make grade   release, autograde every submission, feedback, grade table
#   make test    the test suite
# Both create the virtualenv from requirements.txt when it is missing or stale.

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# nbgrader runs helper programs (alembic) by name: the venv's bin must come first.
export PATH := $(BIN):$(PATH)
export PYDEVD_DISABLE_FILE_VALIDATION := 1
ASSIGNMENT := bn
# Workers for make autograde: one per core unless told otherwise (make autograde JOBS=4).
JOBS ?= $(shell nproc)
STAMP := $(VENV)/.installed
# Loaded by every nbgrader command and Jupyter server of the venv before the course's
# config: autograding refuses unless that config loads in full (coursekit/grading/failclosed.py).
# After the refusal it carries what every student's nbgrader shows, in any folder: the
# course's Validate report, and no instructor tools (coursekit/classroom/studentconfig.py).
GUARD := $(VENV)/etc/jupyter/nbgrader_config.py
# MNIST-1D, built once and copied into every graded folder (coursekit/authoring/data.py).
DATA := source/$(ASSIGNMENT)/mnist1d_data.pkl

.PHONY: all new-class grade release autograde feedback report export similarity samples release-assignment collect release-feedback test test-fast bench clean sandbox postgresql chromium

all: grade

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(GUARD): coursekit/grading/failclosed.py coursekit/classroom/studentconfig.py \
	  $(addprefix coursekit/grading/,validate.py verdicts.py nbgrader_compat.py) $(STAMP)
	mkdir -p $(dir $@)
	{ cat $<; $(BIN)/python -m coursekit.classroom.studentconfig; } > $@.new
	mv $@.new $@

# Debian packages the course needs, installed once when missing (as root; otherwise it
# says what to install): bubblewrap is the grading sandbox (coursekit/grading/sandbox.py);
# the tests also start a PostgreSQL server and open JupyterLab in Chromium.
apt_need = $(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing $(2) (Debian package)"; \
	    apt-get update -qq && apt-get install -y -qq $(2) >/dev/null; \
	  else \
	    echo "Please install $(2): sudo apt-get install $(2)"; exit 1; \
	  fi; }

sandbox:
	@$(call apt_need,command -v bwrap,bubblewrap)

postgresql:
	@$(call apt_need,ls /usr/lib/postgresql/*/bin/initdb,postgresql)

chromium:
	@$(call apt_need,command -v chromium,chromium)

# Your own class: removes the four example students (coursekit/examples/newclass.py). It refuses,
# naming them, when any other student is present; KEEP_OTHERS=1 keeps those as they are.
new-class: $(GUARD)
	$(BIN)/python -m coursekit.examples.newclass $(if $(KEEP_OTHERS),--keep-others)

# Feedback and the grade table are written even when some submissions need attention;
# the exit status still says so.
grade: release
	@status=0; $(MAKE) --no-print-directory autograde || status=1; \
	$(MAKE) --no-print-directory feedback || status=1; \
	$(MAKE) --no-print-directory report || status=1; \
	if [ $$status != 0 ]; then echo "Some submissions need attention: see above and grades.csv."; fi; \
	exit $$status

$(DATA): $(GUARD)
	$(BIN)/python -m coursekit.authoring.data

# Points live in coursekit/kernel/testcells.py: the release refuses to undo points edited in the
# notebook, and records its fixed cells, so that students who fetched an earlier release
# are not taken for having edited them (coursekit/authoring/releases.py).
release: $(GUARD) $(DATA)
	$(BIN)/python -m coursekit.authoring.releases check-points
	$(BIN)/python -m coursekit.authoring.sync
	$(BIN)/nbgrader generate_assignment $(ASSIGNMENT) --force
	$(BIN)/python -m coursekit.authoring.releases record

# nbgrader's own autograde, one student per worker (coursekit/grading/parallel.py);
# make autograde STUDENT=ada regrades ada alone (a glob: STUDENT='a*'), nobody else.
# DB=postgresql://... grades into that gradebook, SCHEDULER=tcp://host:8786 on a Dask
# cluster (docs/scale.md).
AUTOGRADE_OPTIONS = $(if $(DB), --db '$(DB)')$(if $(SCHEDULER), --scheduler '$(SCHEDULER)')
autograde: $(GUARD) sandbox
	$(BIN)/python -m coursekit.grading.parallel $(ASSIGNMENT) --jobs $(JOBS) --student '$(or $(STUDENT),*)'$(AUTOGRADE_OPTIONS)

feedback: $(GUARD)
	$(BIN)/nbgrader generate_feedback $(ASSIGNMENT) --force

report: $(GUARD)
	$(BIN)/python -m coursekit.classroom.report
	$(BIN)/python -m coursekit.examples.pictures

# nbgrader's exchange, for students with accounts on this machine (coursekit/classroom/exchange.py):
# EXCHANGE=/srv/nbgrader/exchange, or unset for c.Exchange.root (nbgrader's default:
# /usr/local/share/nbgrader/exchange).
EXCHANGE ?=
EXCHANGE_ROOT = $(if $(EXCHANGE),--Exchange.root=$(EXCHANGE))

# The release into the exchange, for students' `nbgrader fetch_assignment bn`.
release-assignment: release
	$(BIN)/nbgrader release_assignment $(ASSIGNMENT) --force $(EXCHANGE_ROOT)

# Every student's latest submission into submitted/ (a newer one replaces it).
collect: $(GUARD)
	$(BIN)/nbgrader collect $(ASSIGNMENT) --update $(EXCHANGE_ROOT)

# Each page where only its student's `nbgrader fetch_feedback bn` finds it.
release-feedback: $(GUARD)
	$(BIN)/nbgrader release_feedback $(ASSIGNMENT) $(EXCHANGE_ROOT)

# Grades for the LMS (coursekit/classroom/export.py): grades-canvas.csv for Canvas's gradebook
# import, grades-lms.csv for any other; one column holds the assignment's total.
export: $(GUARD)
	$(BIN)/nbgrader export --assignment=$(ASSIGNMENT)
	$(BIN)/nbgrader export --assignment=$(ASSIGNMENT) --exporter=coursekit.classroom.export.PlainExport

# Similar answers side by side for the instructor to read (coursekit/classroom/similarity.py):
# evidence, never a verdict; writes similarity.html only and changes no grade.
similarity: $(GUARD)
	$(BIN)/python -m coursekit.classroom.similarity

# Rewrites the example class under submitted/ (coursekit.examples.samples.COMMITTED) after the
# release changes.
samples: $(GUARD)
	$(BIN)/python -m coursekit.examples.samples

test: $(GUARD) $(DATA) sandbox postgresql chromium
	$(BIN)/python -m pytest tests

# For every edit: no kernel, browser, server or Unix user, 10 seeds instead of 100
# (tests/conftest.py says what is left out), one lane per core; a minute or two.
test-fast: $(GUARD) $(DATA)
	UDL_SEEDS=10 $(BIN)/python -m pytest tests -n $(JOBS) -m "not slow" -q

# Deliberate one-line bugs (tests/mutants.py), each applied in a scratch copy of this
# checkout: fails if the tests named for a bug still pass with it. MUTANTS='judge intake'
# runs only those.
.PHONY: mutants
mutants: $(GUARD) $(DATA) sandbox
	$(BIN)/python tests/mutants.py $(MUTANTS)

# Grading cost on this machine, as ratios to a measured floor (coursekit/examples/bench.py), and
# docs/scale.md's capacity plan from the same figures.
bench: $(GUARD) $(DATA) sandbox
	$(BIN)/python -m coursekit.examples.bench

clean:
	rm -rf gradebook.db grades.csv grades-canvas.csv grades-lms.csv grades.png predictions.png similarity.html \
	  .pytest_cache
