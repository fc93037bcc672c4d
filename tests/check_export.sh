#!/usr/bin/env bash
# The notebooks are the source: exporting them must reproduce creason/ exactly.
set -euo pipefail
bin="${1:-.venv/bin}"
"$bin/nbdev-export"
if command -v git >/dev/null && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  drift=$(git status --porcelain -- creason)
  if [ -n "$drift" ]; then
    echo "nbdev-export changed creason/: the notebooks and the library disagree:" >&2
    echo "$drift" >&2
    exit 1
  fi
fi
echo "notebooks and creason/ agree"
