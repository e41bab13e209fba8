#!/usr/bin/env bash
# The README's main job: set up .venv if needed, then run `selfimprove quickstart` on the embedded model.
# Extra arguments go to the quickstart command, e.g. `bash scripts/quickstart.sh --out runs/demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/selfimprove quickstart "$@"
