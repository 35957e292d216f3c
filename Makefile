# SIPHON developer entry points. `make test` and `make demo` install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the test suite drives as real peers.
DEB_PACKAGES := sip-tester baresip baresip-core
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck unit debs venv bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,fast,local]'
	# Silero VAD's ONNX model without torch (the package's own deps want torch).
	$(BIN)/python -m pip install --quiet --no-deps 'silero-vad>=5,<7'
	@touch $(STAMP)

debs:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: venv
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q -m "not sipp and not baresip"

test: venv debs lint typecheck
	$(BIN)/pytest -q -ra

# A real SIP call to examples/receptionist.py by the simulated caller, offline (no keys).
demo: venv
	$(BIN)/python scripts/demo_call.py

bench: venv debs
	$(BIN)/python benchmarks/sip_setup_rate.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
