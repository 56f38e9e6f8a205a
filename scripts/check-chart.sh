#!/usr/bin/env bash
# Validate the Helm chart (helm/hilo) without a helm binary or a cluster:
# helm lint --strict, values.schema.json, render, strict Kubernetes schema validation for
# k8s 1.30 and 1.37, chart rules; then a self-test proving the check fails on broken copies.
# Tools: helm-python-sdk (the Helm v4 SDK as a native library) and kubernetes-validate, pinned,
# in a venv at $REPO/.infra/chart-venv (gitignored); a stamp file makes reruns skip pip.
# Usage: scripts/check-chart.sh [--no-self-test]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$REPO/.infra/chart-venv"
REQUIREMENTS="helm-python-sdk==0.2.2 kubernetes-validate==1.37.0"
STAMP="$VENV/.requirements-stamp"

self_test=1
for arg in "$@"; do
  case "$arg" in
    --no-self-test) self_test=0 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "check-chart: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

start_ns=$(date +%s%N)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$REQUIREMENTS" ]; then
  echo "check-chart: preparing $VENV ($REQUIREMENTS)"
  mkdir -p "$(dirname "$VENV")"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || {
    echo "check-chart: 'python3 -m venv' failed (on Debian: apt-get install python3-venv)" >&2; exit 1; }
  # shellcheck disable=SC2086 # word splitting of the requirement list is intended
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install --quiet $REQUIREMENTS
  echo "$REQUIREMENTS" > "$STAMP"
fi

rc=0
"$VENV/bin/python" "$REPO/scripts/check_chart.py" --chart "$REPO/helm/hilo" || rc=1
if [ "$self_test" = 1 ]; then
  "$VENV/bin/python" "$REPO/scripts/check_chart.py" --chart "$REPO/helm/hilo" --self-test || rc=1
fi
elapsed_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
printf 'check-chart: %s in %d.%01d s\n' "$([ $rc = 0 ] && echo OK || echo FAILED)" \
  $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100))
exit $rc
