#!/usr/bin/env bash
# Weekly ltae run for cron: fit (or refresh) the model on this week's data into a dated folder,
# record it in the results store and, optionally, register it in MLflow.
#
# The cron line (every Monday at 06:00; edit the paths; cron has a bare environment, so give the
# full path of the virtual environment's ltae and of this script):
#
#   0 6 * * 1  LTAE=/opt/ltae/.venv/bin/ltae DATA=/data/mmm/latest RUNS=/data/mmm/runs /opt/ltae/examples/weekly_cron.sh >> /var/log/ltae_weekly.log 2>&1
#
# Settings (environment variables):
#   DATA     the data folder or file the week's export lands in: all the weeks so far (required)
#   RUNS     the folder of dated run folders (required): RUNS/2025-03-03, RUNS/2025-03-10, ...
#   LTAE     the ltae command (default: ltae on the PATH)
#   CONFIG   a TOML/YAML configuration file (optional; lift tests, backtest folds, draws, ...)
#   STORE    the DuckDB results store (optional; default $LTAE_STORE, else ~/.local/share/ltae)
#   MLFLOW   1 to log and register the run in MLflow (`ltae register`; MLFLOW_TRACKING_URI, else a
#            local store)
#   DRY_RUN  1 to print the commands instead of running them
#
# With a previous complete run and a version of ltae that has `ltae refresh`, the week is a refresh
# (the last posterior as the prior); otherwise a full `ltae run`. The data are checked first: bad
# data stop the job with exit code 2 and nothing is written.
set -euo pipefail

LTAE=${LTAE:-ltae}
: "${DATA:?set DATA to the data folder or file of the week}"
: "${RUNS:?set RUNS to the folder of dated run folders}"
TODAY=${TODAY:-$(date +%Y-%m-%d)}
NEXT="$RUNS/$TODAY"

run() {
  echo "+ $*"
  if [[ "${DRY_RUN:-0}" != 1 ]]; then "$@"; fi
}

store=()
if [[ -n "${STORE:-}" ]]; then store+=(--store "$STORE"); fi

# the latest earlier dated folder whose manifest says the run completed
prev=""
if [[ -d "$RUNS" ]]; then
  for d in $(ls -1d "$RUNS"/????-??-?? 2>/dev/null | sort -r); do
    [[ "$(basename "$d")" < "$TODAY" ]] || continue
    if grep -q '"status": *"complete"' "$d/manifest.json" 2>/dev/null; then prev=$d; break; fi
  done
fi

run "$LTAE" check --data "$DATA"
if [[ -n "$prev" ]] && "$LTAE" refresh --help >/dev/null 2>&1; then
  run "$LTAE" refresh --run "$prev" --data "$DATA" --out "$NEXT" "${store[@]}"
else
  cfg=()
  if [[ -n "${CONFIG:-}" ]]; then cfg+=(--config "$CONFIG"); fi
  run "$LTAE" run --data "$DATA" --out "$NEXT" "${cfg[@]}" "${store[@]}"
fi
if [[ "${MLFLOW:-0}" == 1 ]]; then
  run "$LTAE" register --run "$NEXT"
fi
