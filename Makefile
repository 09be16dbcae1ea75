# Two commands do everything on a fresh machine:
#   make report   the whole report on the embedded SynthVID data, on a CPU
#   make test     the test suite (unit tests + every notebook under nbval, smoke preset)
# Both create .venv and install the project on first use; later calls reuse it.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# PyTorch builds installed before the project, so pip finds its torch ranges satisfied.
# Override for another build, e.g. `make test TORCH_PINS="torch==2.5.1 torchvision==0.20.1"`.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
# Forwarded to `lsts report`: e.g. `make report REPORT_ARGS=--redo`.
REPORT_ARGS ?=
# Forwarded to `lsts check-html`: e.g. `make check-html HTML_ARGS="--preset smoke"`.
HTML_ARGS ?=

.PHONY: install test report check-html lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/lsts synth --out data/synthvid/smoke --preset smoke --seed 0
	# One thread per xdist worker: two workers on two cores, no oversubscription.
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 tests
	# The smoke pipeline (train, detect, evaluate, bench) the notebooks read, then every
	# notebook under nbval against its committed report-preset outputs.
	$(VENV)/bin/lsts report --preset smoke --seeds 0 --only data stats train detect bench alignment claims
	LSTS_PRESET=smoke $(PY) -m pytest --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks

report: $(STAMP)
	$(VENV)/bin/lsts report $(REPORT_ARGS)

# The HTML edition in headless Chromium (the system's `chromium`): figures shown, contents
# links land; screenshots and check.json in report/check/.
check-html: $(STAMP)
	$(VENV)/bin/lsts check-html $(HTML_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check lsts_lib tests data_prep

clean:
	rm -rf $(VENV) data runs report
