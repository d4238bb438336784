# The two set-up commands of the README. Each creates what it needs from nothing but python3.11.
#   make run    the whole chain locally on the embedded demo data
#   make test   the test suite (both orchestrator environments)
#
# Two environments because kfp 2.17 pins kubernetes<31 and the Airflow cncf-kubernetes provider
# needs kubernetes>=36: .venv holds the steps, TensorFlow and kfp; .venv-airflow holds Airflow,
# whose local-mode DAG runs the steps through .venv's `tfship` command.

PYTHON ?= python3.11
VENV := .venv
AF_VENV := .venv-airflow
RUN_DIR ?= runs/demo

.PHONY: run test test-steps test-airflow venv venv-airflow bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[steps,kfp,test]'
	touch $@

$(AF_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(AF_VENV)
	$(AF_VENV)/bin/pip install -q --upgrade pip
	$(AF_VENV)/bin/pip install -q -e '.[airflow,test]'
	touch $@

venv: $(VENV)/.installed
venv-airflow: $(AF_VENV)/.installed

run: venv
	$(VENV)/bin/tfship run --run-dir $(RUN_DIR)

test: test-steps test-airflow

test-steps: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/python -m pytest tests --ignore=tests/airflow

test-airflow: venv venv-airflow
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" TFSHIP_CLI="$(CURDIR)/$(VENV)/bin/tfship" \
		$(AF_VENV)/bin/python -m pytest tests/airflow

bench: venv
	$(VENV)/bin/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(AF_VENV) runs
