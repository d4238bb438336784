# The two set-up commands of the README. Each creates what it needs from nothing but python3.11.
#   make run    the whole chain locally on the embedded demo data
#   make test   the test suite (both orchestrator environments)
#
# Every environment is installed from a committed lock (locks/*.txt, exact versions with hashes) by
# images/install-env.sh, the same command the Dockerfiles run. uv, the installer, is itself pinned
# with hashes in locks/tools.txt and installed by pip into .venv-tools.
#
# Two environments because kfp 2.17 pins kubernetes<31 and the Airflow cncf-kubernetes provider
# needs kubernetes>=36: .venv holds the steps, TensorFlow and kfp; .venv-airflow holds Airflow,
# whose local-mode DAG runs the steps through .venv's `tfship` command.

PYTHON ?= python3.11
TOOLS := .venv-tools
UV := $(CURDIR)/$(TOOLS)/bin/uv
VENV := .venv
AF_VENV := .venv-airflow
# The CPU image's Python environment, rebuilt as images/Dockerfile.cpu builds it, for the tests.
IMAGE_ENV := .cache/image-cpu
RUN_DIR ?= runs/demo
INSTALL := UV=$(UV) PYTHON=$(PYTHON) sh images/install-env.sh

.PHONY: run test test-steps test-airflow venv venv-airflow image-env prometheus lock clean

$(UV): locks/tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --no-deps --require-hashes -r locks/tools.txt
	touch $@

$(VENV)/.installed: $(UV) locks/dev.txt pyproject.toml
	$(INSTALL) locks/dev.txt $(VENV) --editable
	touch $@

$(AF_VENV)/.installed: $(UV) locks/airflow.txt pyproject.toml
	$(INSTALL) locks/airflow.txt $(AF_VENV) --editable
	touch $@

# Non-editable, like the image: reinstalled when the lock, the install script or the code changes.
$(IMAGE_ENV)/.installed: $(UV) locks/image-cpu.txt images/install-env.sh pyproject.toml $(shell find components -name '*.py')
	$(INSTALL) locks/image-cpu.txt $(IMAGE_ENV)
	touch $@

venv: $(VENV)/.installed
venv-airflow: $(AF_VENV)/.installed
image-env: $(IMAGE_ENV)/.installed

run: venv
	$(VENV)/bin/tfship run --run-dir $(RUN_DIR)

test: test-steps test-airflow

# The live canary's tests run a real Prometheus: Debian's package (CI runs as root, apt reachable).
# Debian's Prometheus, which the live-canary tests start on 127.0.0.1 (they judge real scraped metrics).
# Installed with apt-get when missing (CI runs as root).
prometheus:
	@test -x /usr/bin/prometheus || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; }

# Two pytest-xdist workers, a test file per worker (a file's module fixtures, such as one live
# server and Prometheus, stay in one process): about half the serial wall time on two cores.
test-steps: venv image-env prometheus
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" TFSHIP_IMAGE_ENV="$(CURDIR)/$(IMAGE_ENV)" \
		$(VENV)/bin/python -m pytest tests --ignore=tests/airflow -n 2 --dist loadfile

# The DAG's local mode runs each step as the Airflow pods do (`tfship <step> <chain args>`), with the
# image environment's `tfship`.
test-airflow: venv-airflow image-env
	PATH="$(CURDIR)/$(IMAGE_ENV)/bin:$$PATH" TFSHIP_CLI="$(CURDIR)/$(IMAGE_ENV)/bin/tfship" \
		$(AF_VENV)/bin/python -m pytest tests/airflow

# Refresh the locks from pyproject.toml (keeps pinned versions that still fit; UPGRADE=1 moves them
# to the newest allowed). Then recompile the KFP pipeline, which records the kfp version it used.
lock: $(UV)
	UV=$(UV) $(TOOLS)/bin/python locks/lock.py $(if $(UPGRADE),--upgrade)
	$(MAKE) venv
	$(VENV)/bin/python pipelines/tfship_retrain.py

clean:
	rm -rf $(TOOLS) $(VENV) $(AF_VENV) .cache runs
