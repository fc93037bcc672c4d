#!/usr/bin/env bash
# The peer-harness cross-check: lm-evaluation-harness ranks the options of N questions of a question set (its own
# CLI, HF backend, the embedded model's local folder, CPU), creason evaluates the same N questions with the answer
# protocol, and every question's two choices are compared (agreement, and each disagreement with both margins).
#   bash benchmarks/lm_eval_crosscheck.sh QUESTION_SET_DIR [N=200] [WORK_DIR=a new temporary folder]
# Needs lm-eval: `make engines` installs it into .cache/venv-engines (ENGINES_BIN points elsewhere).
set -euo pipefail
QUESTIONS=$1; N=${2:-200}; WORK=${3:-$(mktemp -d)}
BIN=$(cd "${ENGINES_BIN:-.cache/venv-engines/bin}" && pwd)
export PATH="$BIN:$PATH"
python3 -c 'import os; print("load average before:", os.getloadavg())'
start=$(date +%s)
creason export lm-eval --questions "$QUESTIONS" --out "$WORK/task" --limit "$N" --seed 0
creason evaluate --model smollm2-135m-instruct --questions "$QUESTIONS" --out "$WORK/creason" --limit "$N" --seed 0 \
    --protocol answer --device cpu --bootstrap 200
middle=$(date +%s)
bash "$WORK/task/run_lm_eval.sh" > "$WORK/lm_eval.log" 2>&1 || { tail -30 "$WORK/lm_eval.log"; exit 1; }
end=$(date +%s)
python3 -c 'import os; print("load average after:", os.getloadavg())'
echo "creason export + evaluate: $((middle - start)) s; lm_eval: $((end - middle)) s"
python - "$WORK" <<'PY'
import json, sys
from pathlib import Path
import pandas as pd
from creason.harness import compare_with_lm_eval, read_lm_eval_samples
work = Path(sys.argv[1])
result = compare_with_lm_eval(read_lm_eval_samples(work / "task" / "results"), pd.read_parquet(work / "creason" / "predictions.parquet"))
print(json.dumps(result, indent=1))
PY
