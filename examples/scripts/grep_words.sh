#!/bin/sh
# Checks that every expected word appears in the text.
set -eu
text="$1"; shift
for word in "$@"; do
  grep -qw "$word" "$text" || { echo "missing word: $word" >&2; exit 1; }
done
echo "all $# words found"
