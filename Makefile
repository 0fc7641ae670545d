# AdapterOps: `make demo` runs the pipeline end to end; `make test` runs the test suite.
PYTHON ?= python3.11
VENV ?= .venv
ADAPTEROPS_HOME ?= $(CURDIR)/.adapterops
PREFECT_PORT ?= 4200
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export ADAPTEROPS_HOME

.PHONY: install demo test test-slow test-server test-labeling test-services bench mlflow-ui prefect-ui clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev,labeling]'
	$(BIN)/python -m tasks.dedup   # compile and cache the dedup kernels now, not in the first dedup run
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/adapterops demo

test: install
	$(BIN)/python -m pytest

# Whole `adapterops run` processes killed, signalled or starved of disk at named points, and the longer flows
# (about 15 minutes): CI runs it after `make test`.
test-slow: install
	$(BIN)/python -m pytest -m slow

# Against a real `prefect server start` with a process worker (a few minutes): deploy, suspend, resume, notify.
test-server: install
	$(BIN)/python -m pytest -m server tests/server

# Against a real Label Studio 1.23.2 (about 3 minutes to install once, then a few minutes): push, two annotators,
# pull, curate. Label Studio's own dependencies clash with ours: it lives in its own git-ignored venv.
LS_VENV ?= .venv-labelstudio
$(LS_VENV)/.installed: tests/labelstudio/requirements.txt tests/labelstudio/constraints.txt
	@test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV) || python3 -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --constraint tests/labelstudio/constraints.txt -r tests/labelstudio/requirements.txt
	@touch $@

test-labeling: install $(LS_VENV)/.installed
	LABEL_STUDIO_VENV=$(CURDIR)/$(LS_VENV) $(BIN)/python -m pytest -m labelstudio tests/labelstudio

# On real services (PostgreSQL, an S3 server, MLflow and Prefect servers, a Dask cluster, cpu/gpu workers); see
# docs/shared-services.md. Installs PostgreSQL with apt-get when it is missing.
test-services: install
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev,services]'
	$(BIN)/python -m pytest -m services tests/services -p no:cacheprovider

bench: install
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[dev,bench]'
	$(BIN)/python benchmarks/dedup.py --mode both --repeats 3

mlflow-ui: install
	@echo "MLflow UI: http://127.0.0.1:5000/#/experiments?workflowType=machine_learning (model-training pages)"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(ADAPTEROPS_HOME)/mlflow/mlflow.db --port 5000

# The UI calls the API on PREFECT_SERVER_API_PORT (4200 unless set): set it, not --port, so both agree.
prefect-ui: install
	PREFECT_HOME=$(ADAPTEROPS_HOME)/prefect PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT=$(PREFECT_PORT) \
		$(BIN)/prefect server start

clean:
	rm -rf $(ADAPTEROPS_HOME)
