# auth-service developer commands. `make install` once, then `make test`.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never

.PHONY: install system-packages test lint fmt dev up down bench services requirements clean

install: $(BIN)/auth-service  ## Create .venv and install pinned dependencies plus the package

# Debian packages of deploy/system-packages.txt (nginx, libzbar0, librsvg2-bin, ...):
# installed when run as root, otherwise one line naming the apt-get command.
system-packages:
	./deploy/ensure-system-packages.sh

$(BIN)/auth-service: requirements/dev.txt pyproject.toml | system-packages
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

services:  ## Start the local PostgreSQL and Redis if they are installed but stopped
	./deploy/ensure-services.sh

test: install  ## Run the whole test suite against real PostgreSQL and Redis
	$(BIN)/pytest -q

lint: install  ## ruff (lint + format check), mypy --strict, import-linter contracts
	$(BIN)/ruff check auth_service tests bench
	$(BIN)/ruff format --check auth_service tests bench
	$(BIN)/mypy --strict auth_service
	$(BIN)/lint-imports --no-cache

fmt: install
	$(BIN)/ruff check --fix auth_service tests bench
	$(BIN)/ruff format auth_service tests bench

requirements:  ## Re-pin dependencies (hashes, no index URL)
	uv pip compile --generate-hashes --no-emit-index-url --python-version 3.11 pyproject.toml -o requirements/main.txt
	uv pip compile --generate-hashes --no-emit-index-url --python-version 3.11 --extra dev pyproject.toml -o requirements/dev.txt

dev: install  ## Whole topology natively: IdP stand-in, auth-service, demo, nginx on http://localhost:8080 (ports: AUTH_DEV_*_PORT)
	$(BIN)/auth-service dev

up:  ## Whole topology in Docker (Keycloak, PostgreSQL, Redis, auth-service, nginx, demo)
	docker compose up -d --build

down:
	docker compose down

bench: install  ## Load test /authz/auth-request vs a FastAPI + python-keycloak baseline (needs wrk: apt-get install wrk)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
