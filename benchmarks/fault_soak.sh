#!/usr/bin/env bash
# Soak of the fault suite: `pytest -m faults` RUNS times in a row (default 5) while LOAD CPU-bound
# processes (default 2) compete for the cores, as on a busy CI machine. A timing-dependent test shows
# up here as a failure; the target is 0 failures. Prints one line per run and a summary; the
# per-case figures of every run are appended to $MSUP_FAULTS_LOG when that is set.
#   bash benchmarks/fault_soak.sh [RUNS] [LOAD]
# Run it from the repository root, in the environment of the README's test command.
set -uo pipefail
runs=${1:-5}
load=${2:-2}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
for _ in $(seq "$load"); do
    python3 -c "while True: pass" &
    pids+=($!)
done
failures=0
for run in $(seq "$runs"); do
    start=$(date +%s)
    if out=$(pytest -m faults -q -p no:cacheprovider 2>&1); then status=passed; else status=FAILED; failures=$((failures + 1)); fi
    summary=$(printf '%s\n' "$out" | tail -n 1)
    echo "run $run/$runs: $status in $(( $(date +%s) - start )) s ($summary)"
    if [ "$status" != passed ]; then
        printf '%s\n' "$out" | grep -E "^(FAILED|ERROR)" | sed 's/^/    /'
        printf '%s\n' "$out" > "fault-soak-run-$run.log"
        echo "    full output: fault-soak-run-$run.log"
    fi
done
echo "soak: $failures failure(s) in $runs runs under $load CPU-bound load process(es)"
[ "$failures" -eq 0 ]
