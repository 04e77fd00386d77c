# hopthu: the README's two commands are `make lab` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
BIN := $(VENV)/bin
INVENTORY ?= lab
# pytest exits 5 when it collects no test: for us that is a broken selection,
# never a pass. tests/run-pytest says so plainly.
PYTEST := bash tests/run-pytest $(BIN)/pytest

.PHONY: help venv lab lab-bookworm lab-up lab-deploy lab-verify lab-down lab-status test lint unit lab-test lab-test-bookworm \
        deploy-ansible deploy-pyinfra verify benchmarks clean

help:
	@echo "make lab      bring up the lab, deploy it with Ansible, run the infra suite, summarise"
	@echo "make test     lint + unit tests + the lab end-to-end tests (needs root)"
	@echo "make lab-down remove the lab (hosts, bridge, proxy, clones)"
	@echo "make lab-bookworm   the same lab on Debian 12"
	@echo "make benchmarks     time a fresh converge and a no-op re-run with each engine"

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# --- the lab: the main job ------------------------------------------------------
# The summary is printed even when a step fails, and `make lab` then fails.
lab: venv
	@rc=0; \
	$(BIN)/hopthu lab up || rc=1; \
	[ $$rc -ne 0 ] || $(BIN)/hopthu deploy --engine ansible --inventory lab || rc=1; \
	[ $$rc -ne 0 ] || $(BIN)/hopthu verify --inventory lab || rc=1; \
	echo; $(BIN)/hopthu lab summary || rc=1; \
	exit $$rc

# The same lab on Debian 12 "bookworm" (the supported older release): a fresh
# lab, because one lab never mixes releases.
lab-bookworm: venv
	$(BIN)/hopthu lab down
	HOPTHU_LAB_SUITE=bookworm $(MAKE) lab

lab-up: venv
	$(BIN)/hopthu lab up

lab-deploy: venv
	$(BIN)/hopthu deploy --engine ansible --inventory lab

lab-verify: venv
	$(BIN)/hopthu verify --inventory lab

lab-status: venv
	$(BIN)/hopthu lab status

lab-down: venv
	$(BIN)/hopthu lab down

# --- deploys to any inventory -------------------------------------------------------
deploy-ansible: venv
	$(BIN)/hopthu deploy --engine ansible --inventory $(INVENTORY)

deploy-pyinfra: venv
	$(BIN)/hopthu deploy --engine pyinfra --inventory $(INVENTORY)

verify: venv
	$(BIN)/hopthu verify --inventory $(INVENTORY)

# --- tests ------------------------------------------------------------------------------
test: lint unit lab-test lab-test-bookworm

lint: venv
	$(BIN)/ruff check hopthu filter_plugins tests benchmarks deploy.py
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production site.yml roles
	$(BIN)/hopthu settings argspecs --check

# The JUnit file is evidence for `hopthu audit` (controls.yml names unit tests too).
unit: venv
	$(PYTEST) tests/unit -q -o junit_family=xunit1 --junitxml=reports/unit/unit-junit.xml

# HOPTHU_LAB_TEARDOWN=1: the lifecycle tests also replace hosts and prove that
# `hopthu lab down` leaves nothing behind (they run first; see tests/lab/conftest.py).
lab-test: venv
	HOPTHU_LAB_TEARDOWN=1 $(PYTEST) tests/lab -v -p no:cacheprovider --junitxml=reports/lab/lab-junit.xml

# The same lab tests on Debian 12 "bookworm" (Postfix 3.7, Dovecot 2.3): a fresh
# lab, because one lab never mixes releases. The lifecycle tests are not
# repeated: they test the lab tool, not the release.
lab-test-bookworm: venv
	$(BIN)/hopthu lab down
	HOPTHU_LAB_SUITE=bookworm $(PYTEST) tests/lab -v -p no:cacheprovider \
	    --ignore=tests/lab/test_lab_lifecycle.py --junitxml=reports/lab/lab-bookworm-junit.xml

benchmarks: venv
	$(BIN)/python benchmarks/deploy.py

clean:
	rm -rf reports .pytest_cache
