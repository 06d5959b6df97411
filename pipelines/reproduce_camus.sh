#!/usr/bin/env bash
# The whole chain on CAMUS (either release: patientNNNN/ folders):
#   pipelines/reproduce_camus.sh DATA_DIR [OUT]      full size (see pipelines/reproduce/chain.sh for the stages)
#   pipelines/reproduce_camus.sh --dry-run [OUT]     tiny, end to end, on a phantom-written camus layout
# Run from the repository root with the venv active.
set -euo pipefail
if [[ ${1:-} == --dry-run ]]; then DRY=1 DATA=- OUT=${2:-runs/reproduce_camus_dry}; else DRY=0 DATA=${1:?usage: $0 DATA_DIR|--dry-run [OUT]} OUT=${2:-runs/reproduce_camus}; fi
KIND=camus DRY=$DRY DATA=$DATA OUT=$OUT exec bash "$(dirname "$0")/reproduce/chain.sh"
