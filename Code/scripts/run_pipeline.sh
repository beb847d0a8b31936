#!/usr/bin/env bash
# The whole assignment, end to end: set up .venv, then execute every notebook in order, in place,
# regenerating the checkpoint, the dataset, the results, the workbook and the report.
# An existing dataset that differs from the regenerated one is moved to Code/backups/, never deleted.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bash "$ROOT/Code/scripts/setup.sh"
export PATH="$ROOT/.venv/bin:$PATH" REPLACE_EXISTING="${REPLACE_EXISTING:-1}"
cd "$ROOT/Code"
for nb in 0*.ipynb; do
  start=$SECONDS
  echo "pipeline: running $nb"
  jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=3600 "$nb"
  echo "pipeline: $nb done in $((SECONDS - start)) s"
done
echo "pipeline: results in Code/results/, figures in Code/figures/, 'Assignment 4 Results.xlsx' and 'Assignment 4_Report.pdf' at the top"
