# The README's two commands: `make demo` and `make test`. Both set up what they need first.
# Run as root on Debian 12: setup installs system packages, the tests make namespaces.
.PHONY: setup services demo test unit lint typecheck bench

# ip, nft, dockerd live in sbin, which a non-login root shell may not have on its PATH.
export PATH := /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$(PATH)

VENV := .venv/bin
# bench/ and the like may not exist yet in every checkout: ruff fails on a missing path.
PY_DIRS := $(wildcard src tests bench)

setup:
	@bash scripts/setup.sh

# What the Docker tests need: a running engine and the locally built busybox and birthday-service
# images (the second is rebuilt only when src/birthdays or its requirements change).
services: setup
	@bash scripts/start-dockerd.sh
	@bash scripts/busybox-image.sh
	@bash scripts/python-image.sh

demo: services
	$(VENV)/netplumb demo

lint: setup
	$(VENV)/ruff check $(PY_DIRS)
	$(VENV)/ruff format --check $(PY_DIRS)

typecheck: setup
	$(VENV)/mypy

unit: setup
	$(VENV)/pytest -q -p no:cacheprovider tests/unit

# Lint, type checks and tests all run even when one fails (one CI run shows every problem);
# the target fails if any did. pytest runs last so its summary closes the output.
test: services
	@rc=0; \
	echo "== ruff"; \
	$(VENV)/ruff check $(PY_DIRS) || rc=1; \
	$(VENV)/ruff format --check $(PY_DIRS) || rc=1; \
	echo "== mypy"; \
	$(VENV)/mypy || rc=1; \
	echo "== pytest"; \
	$(VENV)/pytest -q -p no:cacheprovider || rc=1; \
	if [ $$rc -ne 0 ]; then echo "make test: FAILED (see above)"; fi; \
	exit $$rc

# Every benchmark side by side with its peers, then bench/REPORT.md with tables and plots.
# QUICK=1: fewer iterations and shorter runs (a few minutes instead of about twenty).
# A quick run writes bench/results/quick/ (results, REPORT.md, plots): never the full figures.
BENCHES := attach ports ports_timewait scale service cni dns
BENCH_OUT := $(CURDIR)/bench/results$(if $(QUICK),/quick,)
bench: services
	@mkdir -p $(BENCH_OUT)
	@for b in $(BENCHES); do \
	    echo "== bench/$$b.py"; \
	    BENCH_RESULTS=$(BENCH_OUT) $(VENV)/python bench/$$b.py $(if $(QUICK),--quick,) || exit 1; \
	done
	$(VENV)/python bench/report.py $(if $(QUICK),$(BENCH_OUT),)
