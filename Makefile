# Two commands do everything (see README.md); each is one call of run.py, which works without make too:
#   make pipeline   = python3 run.py pipeline   set up .venv and run every notebook in order
#   make test       = python3 run.py test       set up .venv and run all tests, including nbval on every notebook
PYTHON ?= python3
.PHONY: setup pipeline test lab

setup:
	$(PYTHON) run.py setup

pipeline:
	$(PYTHON) run.py pipeline

test:
	$(PYTHON) run.py test

lab:
	$(PYTHON) run.py lab
