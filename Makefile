# dops — developer entry points. Everything installs itself: a fresh clone needs only Python 3.11+ and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: help venv clients shell k8s realcluster-up realcluster-down lint typecheck importlint test test-fast demo bench chaos chaos-real e2e clean

help:
	@echo "make demo   – run the example operations on the embedded control plane"
	@echo "make test   – lint, type-check, layer contracts and the whole test suite"
	@echo "make shell  – a shell with dops, kubectl and helm on PATH (after make demo)"
	@echo "make bench  – benchmark scripts (print numbers)"
	@echo "make chaos  – the chaos suite alone (DOPS_CHAOS_SEED/OPS/SECONDS to size or replay it)"
	@echo "make chaos-real – the chaos suite on the real control plane (built by make k8s)"
	@echo "make e2e    – kind end-to-end suite (needs Docker + kind)"
	@echo "make k8s    – build the real upstream control plane from Go modules (cached in ~/.cache/dops/k8s)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "› installing dops with the test and fiftyone extras into $(VENV)"
	@# uv installs the same packages as pip in seconds from its cache (~/.cache/uv) and skips compiling ~1 GB
	@# of bytecode up front; it tries the cache alone first and asks the index only for what is missing there.
	@# Without uv (it cannot be installed), plain pip does the same job, only slower.
	@# The fiftyone extra (FiftyOne + mongomock) runs tests/fiftyone: the differential suite and the bridge.
	@if $(PY) -m pip install --quiet --disable-pip-version-check uv >/dev/null 2>&1; then \
		$(PY) -m uv pip install --quiet --python $(PY) --offline -e '.[test,fiftyone]' 2>/dev/null || \
		$(PY) -m uv pip install --quiet --python $(PY) -e '.[test,fiftyone]'; \
	else \
		$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip && \
		$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,fiftyone]'; \
	fi
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

clients: venv
	@$(PY) scripts/fetch_clients.py >/dev/null

# Your $SHELL with the venv's dops and the fetched kubectl and helm first on PATH (`exit` leaves it). It needs
# no install step of its own: `make demo` made the venv and fetched the clients.
shell:
	@test -x $(PY) || { echo "make shell: no $(VENV) yet: run make demo first" >&2; exit 2; }
	@clients="$$($(PY) scripts/fetch_clients.py --quiet)" && \
		echo "› dops, kubectl and helm on PATH ($(abspath $(VENV))/bin, $$clients); exit to leave" >&2 && \
		PATH="$(abspath $(VENV))/bin:$$clients:$$PATH" VIRTUAL_ENV="$(abspath $(VENV))" exec "$${SHELL:-/bin/bash}"

# The real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) built from the
# Go modules pinned in hack/k8s/go.mod. `make test` calls it when Go is on PATH; without Go the
# real-plane suites skip with one line saying why.
k8s:
	@$(PYTHON) scripts/build_k8s.py

realcluster-up: venv k8s
	@$(PY) -m tests.realcluster up

realcluster-down: venv
	@$(PY) -m tests.realcluster down

lint: venv
	@echo "› ruff"; $(VENV)/bin/ruff check operator tests scripts
	@# mypy's cache lives outside the checkout, so a fresh clone type-checks in seconds instead of a minute
	@echo "› mypy"; cd operator && MYPY_CACHE_DIR="$${MYPY_CACHE_DIR:-$$HOME/.cache/dops/mypy}" ../$(VENV)/bin/mypy -p dops
	@echo "› import-linter"; $(VENV)/bin/lint-imports --no-cache

test: lint clients
	@if command -v go >/dev/null 2>&1; then $(MAKE) --no-print-directory k8s; \
		else echo "› no Go toolchain on PATH: the real control plane suites will skip (install Go 1.25+ to run them)"; fi
	@echo "› pytest: two shards of embedded tests and the real-control-plane tests at once (scripts/run_tests.py)"
	@KUBECTL="$$($(PY) scripts/fetch_clients.py --quiet)/kubectl" HELM="$$($(PY) scripts/fetch_clients.py --quiet)/helm" \
		$(PY) scripts/run_tests.py $(PYTEST_ARGS)

demo: clients
	@$(PY) scripts/demo.py

test-fast: venv
	$(VENV)/bin/pytest -x -q $(PYTEST_ARGS)

# Every benchmark runs to its end even when one before it missed a target; the last line says which did.
bench: venv
	$(PY) scripts/run_benchmarks.py

# The chaos suites (tests/chaos; both also part of `make test`): operations under operator kills, deletions, API
# faults, cancels and re-queues; prints the seed and one line of figures.
chaos: venv
	$(VENV)/bin/pytest tests/chaos/test_chaos.py -q -s -p no:cacheprovider $(PYTEST_ARGS)

chaos-real: venv clients k8s
	@KUBECTL="$$($(PY) scripts/fetch_clients.py --quiet)/kubectl" HELM="$$($(PY) scripts/fetch_clients.py --quiet)/helm" \
		$(VENV)/bin/pytest tests/chaos/test_chaos_real.py -q -s -p no:cacheprovider $(PYTEST_ARGS)

e2e: clients
	$(VENV)/bin/pytest tests/e2e -m e2e --run-e2e $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .dops
