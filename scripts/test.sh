#!/usr/bin/env bash
# Set up, then run the whole test suite (slow real-model tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_vllm.sh  # its own venv (.venv-vllm): the vLLM integration test serves the model from it
# shellcheck disable=SC1091
. "${LLMSTRUCT_VENV:-.venv}/bin/activate"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False ANONYMIZED_TELEMETRY=False
python -m pytest -q "$@"
