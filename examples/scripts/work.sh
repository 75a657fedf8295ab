#!/bin/sh
# Does real CPU work for about the given number of iterations, then sleeps.
set -eu
iterations="$1"; pause="${2:-0}"
i=0; acc=0
while [ "$i" -lt "$iterations" ]; do acc=$(( (acc * 31 + i) % 1000003 )); i=$((i + 1)); done
echo "checksum $acc"
sleep "$pause"
