#!/usr/bin/env bash
# Installs the Debian packages the build and tests need, skipping what is already there.
# `ensure-system.sh bench` adds the load generator used by bench/.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
if [ "${1:-}" = "bench" ]; then
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing system packages: ${need[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get install -y --no-install-recommends "${need[@]}" \
  || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${need[@]}"; }
