# Set-up and entry points. `make demo` and `make test` work on a fresh clone: they create
# .venv with python3 -m venv and install the project with everything it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean system-deps

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> installing constellation-py and its dependencies into $(VENV) (about a minute)"
	$(PY) -m pip install --disable-pip-version-check --progress-bar off -e ".[all]" \
		| grep -E "^(Collecting|Successfully)" || true
	$(PY) -c "import constellation, h5py, rich, zmq"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Debian's chromium and chromium-driver for the browser tests (installed when missing, as root).
system-deps:
	bash .ci/system-deps.sh

# Two workers (the tests are isolated: own groups, free ports, own tmp dirs); a test file stays
# on one worker, so its module-scoped fixtures are set up once.
test: $(STAMP) lint system-deps
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(PY) bench/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis demo_output
