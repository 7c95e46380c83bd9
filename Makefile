# The README's two commands: `make demo` and `make test`. Both set up what they need first.
.PHONY: setup demo test unit lint typecheck bench services

setup:
	@bash scripts/setup.sh

services: setup
	@bash scripts/start-dockerd.sh
	@bash scripts/busybox-image.sh

demo: services
	.venv/bin/netplumb demo

lint: setup
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench

typecheck: setup
	.venv/bin/mypy

unit: setup
	.venv/bin/pytest -q tests/unit

test: services lint typecheck
	.venv/bin/pytest -q -p no:cacheprovider

bench: services
	.venv/bin/python bench/attach.py $(if $(QUICK),--quick,)
