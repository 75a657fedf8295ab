#!/usr/bin/env bash
# Feeds every kind of bad input we know of to coordctl and a running
# coordinator, and writes what the user sees to docs/bad-inputs.md (or the
# file given). Each case ends by checking that the coordinator still answers.
#   scripts/bad-inputs.sh [OUTPUT.md]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/bad-inputs.md}"
bin="$PWD/build/bin"
work="$(mktemp -d)"
coordinator_pid=""
cleanup() { [ -n "$coordinator_pid" ] && kill "$coordinator_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$bin/coordinator" --listen=127.0.0.1:0 --data-dir="$work/data" --max-suite-tests=200000 \
  >"$work/coordinator.log" 2>&1 &
coordinator_pid=$!
port=""
for _ in $(seq 100); do
  port=$(grep -o 'listening on port [0-9]*' "$work/coordinator.log" | grep -o '[0-9]*$' || true)
  [ -n "$port" ] && break
  sleep 0.1
done
address="127.0.0.1:$port"
echo '{"name":"w","tests":[{"id":"ok","cmd":["true"]}]}' >"$work/tiny.json"

rows=()
# case NAME SUITE_CONTENT_GENERATOR... : writes the suite with python, submits it.
try() {
  local name="$1" file="$2"
  shift 2
  local output code
  set +e
  output=$(cd "$work" && timeout 300 "$bin/coordctl" "$@" 2>&1 | tr '\n' ' ' | cut -c1-220)
  code=${PIPESTATUS[0]}
  set -e
  # The coordinator must still take work after each case.
  local alive="yes"
  (cd "$work" && "$bin/coordctl" submit tiny.json --coordinator="$address" \
     --cache-dir="$work/cc" >/dev/null 2>&1) || alive="NO"
  [ -d /proc/"$coordinator_pid" ] || alive="NO (crashed)"
  output="${output//|/\\|}"
  rows+=("| $name | \`$file\` | $code | $output | $alive |")
  echo "$name: exit $code, coordinator alive: $alive"
}

gen() { python3 -c "$1" >"$work/$2"; }

gen 'print("{\"tests\": [ {\"id\": }")' malformed.json
try "malformed JSON" malformed.json submit malformed.json --coordinator="$address" --cache-dir="$work/cc"
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"]}], \"nmae\": 1}")' unknown.json
try "unknown field" unknown.json submit unknown.json --coordinator="$address" --cache-dir="$work/cc"
gen 'import json; print(json.dumps({"tests": [{"id": "x"*1000000, "cmd": ["true"]}]}))' huge-id.json
try "1 MB test id" huge-id.json submit huge-id.json --coordinator="$address" --cache-dir="$work/cc" --wait
gen 'import json; print(json.dumps({"tests": [{"id": "bell\u0007\u001b[31m", "cmd": ["printf", "\u0001\u0002"]}]}))' control.json
try "control characters in id and argv" control.json submit control.json --coordinator="$address" --cache-dir="$work/cc" --wait --junit="$work/control.xml"
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"x\\u0000y\"]}]}")' nul.json
try "NUL in argv" nul.json submit nul.json --coordinator="$address" --cache-dir="$work/cc"
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"], \"inputs\": [\"/etc/passwd\"]}]}")' absolute.json
try "absolute input path" absolute.json submit absolute.json --coordinator="$address" --cache-dir="$work/cc"
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"], \"cwd\": \"../..\"}]}")' dotdot.json
try "\`..\` cwd" dotdot.json submit dotdot.json --coordinator="$address" --cache-dir="$work/cc"
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"], \"timeout\": \"-5s\"}]}")' negative.json
try "negative timeout" negative.json submit negative.json --coordinator="$address" --cache-dir="$work/cc"
gen 'print("{\"priority\": 99999999999999999999, \"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"]}]}")' overflow.json
try "overflowing integer" overflow.json submit overflow.json --coordinator="$address" --cache-dir="$work/cc"
gen 'print("{\"priority\": 1e999, \"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"]}]}")' bignum.json
try "number beyond a double" bignum.json submit bignum.json --coordinator="$address" --cache-dir="$work/cc"
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"], \"memory_limit\": \"99999999999TiB\"}]}")' size.json
try "overflowing size" size.json submit size.json --coordinator="$address" --cache-dir="$work/cc"
gen 'print("[" * 100000 + "]" * 100000)' deep.json
try "100,000 nested arrays" deep.json submit deep.json --coordinator="$address" --cache-dir="$work/cc"
printf '{"tests": [{"id": "\xff\xfe", "cmd": ["true"]}]}' >"$work/utf8.json"
try "invalid UTF-8" utf8.json submit utf8.json --coordinator="$address" --cache-dir="$work/cc"
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"]}, {\"id\": \"a\", \"cmd\": [\"true\"]}]}")' dup.json
try "duplicate ids" dup.json submit dup.json --coordinator="$address" --cache-dir="$work/cc"
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": []}]}")' empty.json
try "empty cmd" empty.json submit empty.json --coordinator="$address" --cache-dir="$work/cc"
try "missing suite file" missing.json submit missing.json --coordinator="$address" --cache-dir="$work/cc"
gen 'import json; print(json.dumps({"name": "big", "tests": [{"id": f"t{i}", "cmd": ["true"]} for i in range(100000)]}))' big.json
try "100,000-test suite" big.json submit big.json --coordinator="$address" --cache-dir="$work/cc"
gen 'import json; print(json.dumps({"name": "big", "tests": [{"id": f"t{i}", "cmd": ["true"]} for i in range(200001)]}))' toobig.json
try "200,001 tests (over --max-suite-tests)" toobig.json submit toobig.json --coordinator="$address" --cache-dir="$work/cc"
gen 'import json; print(json.dumps({"tests": [{"id": "a", "cmd": ["true"], "env": {"BLOB": "x" * (300 << 20)}}]}))' oversized.json
try "300 MB suite (over the message limit)" oversized.json submit oversized.json --coordinator="$address" --cache-dir="$work/cc"
try "unreachable coordinator" tiny.json submit tiny.json --coordinator=127.0.0.1:1 --cache-dir="$work/cc"
try "unknown suite id" - status no-such-suite --coordinator="$address"

{
  echo "# Bad inputs and what the user sees"
  echo
  echo "Produced by \`scripts/bad-inputs.sh\` on $(date -u +%Y-%m-%d) against \`coordctl submit\` and a running"
  echo "coordinator (\`--max-suite-tests=200000\`). After each case the script submits a valid suite:"
  echo "the last column says whether the coordinator still took it. Messages are cut at 220 characters."
  echo
  echo "| input | file | exit | what coordctl prints | coordinator still works |"
  echo "| --- | --- | --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
} >"$out"
echo "wrote $out"
