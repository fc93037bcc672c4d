#!/usr/bin/env bash
# The notebooks are the source: exporting them must leave creason/ exactly as it was.
set -euo pipefail
bin="${1:-.venv/bin}"
snapshot() { find creason -name '*.py' -type f | sort | xargs sha256sum; }
before=$(snapshot)
"$bin/nbdev-export"
after=$(snapshot)
if [ "$before" != "$after" ]; then
  echo "nbdev-export changed creason/: the notebooks and the library disagreed (now re-exported):" >&2
  diff <(echo "$before") <(echo "$after") | grep '^[<>]' | awk '{print $1, $3}' | sort -u -k2 >&2 || true
  exit 1
fi
echo "notebooks and creason/ agree"
