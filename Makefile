# Two commands do everything (see README.md):
#   make pipeline   set up .venv and run every notebook end to end (dataset, results, workbook, report)
#   make test       set up .venv and run all tests, including nbval re-executing every notebook
.PHONY: setup pipeline test

setup:
	bash Code/scripts/setup.sh

pipeline:
	bash Code/scripts/run_pipeline.sh

test:
	bash Code/scripts/run_tests.sh
