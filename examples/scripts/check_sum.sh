#!/bin/sh
# Adds the numbers in a data file and compares with the expected total.
set -eu
file="$1"; expected="$2"
total=0
for n in $(cat "$file"); do total=$((total + n)); done
echo "sum of $file is $total"
[ "$total" -eq "$expected" ]
