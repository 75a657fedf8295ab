#!/usr/bin/env bash
# Feeds every kind of bad input we know of to coordctl and a running
# coordinator, and writes what the user sees to docs/bad-inputs.md (or the
# file given). Each case ends by checking that the coordinator still answers.
#   scripts/bad-inputs.sh [OUTPUT.md]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/bad-inputs.md}"
. scripts/lib.sh
require_build
work="$(mktemp -d)"
coordinator_pid=""
cleanup() { [ -n "$coordinator_pid" ] && kill "$coordinator_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$bin/coordinator" --listen=127.0.0.1:0 --data-dir="$work/data" --max-suite-tests=200000 \
  >"$work/coordinator.log" 2>&1 &
coordinator_pid=$!
address="127.0.0.1:$(listening_port "$work/coordinator.log")"
echo '{"name":"w","tests":[{"id":"ok","cmd":["true"]}]}' >"$work/tiny.json"

rows=()
# try NAME FILE COORDCTL_ARGS...: runs coordctl in $work, notes its exit code
# and output, then checks that the coordinator still takes work.
try() {
  local name="$1" file="$2"
  shift 2
  local output code
  set +e
  output=$(cd "$work" && timeout 300 "$bin/coordctl" "$@" 2>&1 | tr '\n' ' ' | cut -c1-220)
  code=${PIPESTATUS[0]}
  set -e
  record "$name" "\`$file\`" "$code" "$output"
}

# record NAME FILE CODE OUTPUT: checks that the coordinator still takes work,
# then adds the row.
record() {
  local alive="yes" output="${4//|/\\|}"
  (cd "$work" && "$bin/coordctl" submit tiny.json --coordinator="$address" \
     --cache-dir="$work/cc" >/dev/null 2>&1) || alive="NO"
  [ -d /proc/"$coordinator_pid" ] || alive="NO (crashed)"
  rows+=("| $1 | $2 | $3 | $output | $alive |")
  echo "$1: exit $3, coordinator alive: $alive"
}

gen() { python3 -c "$1" >"$work/$2"; }
# submit_case NAME FILE [COORDCTL_FLAGS...]: try FILE through `coordctl submit`.
submit_case() {
  local name="$1" file="$2"
  shift 2
  try "$name" "$file" submit "$file" --coordinator="$address" --cache-dir="$work/cc" "$@"
}

gen 'print("{\"tests\": [ {\"id\": }")' malformed.json
submit_case "malformed JSON" malformed.json
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"]}], \"nmae\": 1}")' unknown.json
submit_case "unknown field" unknown.json
gen 'import json; print(json.dumps({"tests": [{"id": "x"*1000000, "cmd": ["true"]}]}))' huge-id.json
submit_case "1 MB test id" huge-id.json --wait
gen 'import json; print(json.dumps({"tests": [{"id": "bell\u0007\u001b[31m", "cmd": ["printf", "\u0001\u0002"]}]}))' control.json
submit_case "control characters in id and argv" control.json --wait --junit="$work/control.xml"
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"x\\u0000y\"]}]}")' nul.json
submit_case "NUL in argv" nul.json
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"], \"inputs\": [\"/etc/passwd\"]}]}")' absolute.json
submit_case "absolute input path" absolute.json
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"], \"cwd\": \"../..\"}]}")' dotdot.json
submit_case "\`..\` cwd" dotdot.json
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"], \"timeout\": \"-5s\"}]}")' negative.json
submit_case "negative timeout" negative.json
gen 'print("{\"priority\": 99999999999999999999, \"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"]}]}")' overflow.json
submit_case "overflowing integer" overflow.json
gen 'print("{\"priority\": 1e999, \"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"]}]}")' bignum.json
submit_case "number beyond a double" bignum.json
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"], \"memory_limit\": \"99999999999TiB\"}]}")' size.json
submit_case "overflowing size" size.json
gen 'print("[" * 100000 + "]" * 100000)' deep.json
submit_case "100,000 nested arrays" deep.json
printf '{"tests": [{"id": "\xff\xfe", "cmd": ["true"]}]}' >"$work/utf8.json"
submit_case "invalid UTF-8" utf8.json
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"]}, {\"id\": \"a\", \"cmd\": [\"true\"]}]}")' dup.json
submit_case "duplicate ids" dup.json
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": []}]}")' empty.json
submit_case "empty cmd" empty.json
submit_case "missing suite file" missing.json
gen 'import json; print(json.dumps({"name": "big", "tests": [{"id": f"t{i}", "cmd": ["true"]} for i in range(100000)]}))' big.json
submit_case "100,000-test suite" big.json
gen 'import json; print(json.dumps({"name": "big", "tests": [{"id": f"t{i}", "cmd": ["true"]} for i in range(200001)]}))' toobig.json
submit_case "200,001 tests (over --max-suite-tests)" toobig.json
gen 'import json; print(json.dumps({"tests": [{"id": "a", "cmd": ["true"], "env": {"BLOB": "x" * (300 << 20)}}]}))' oversized.json
submit_case "300 MB suite (over the message limit)" oversized.json
# Symbolic links out of the suite folder, and a key given twice.
mkdir -p "$work/linked" && ln -sfn /etc "$work/lnk" && ln -sfn /etc/hostname "$work/linked/alias"
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"], \"inputs\": [\"lnk/hostname\"]}]}")' symlink-input.json
submit_case "input through a symlink to /etc" symlink-input.json
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"], \"inputs\": [\"linked\"]}]}")' symlink-file.json
submit_case "input folder holding a link to /etc/hostname" symlink-file.json
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"], \"cwd\": \"lnk\"}]}")' symlink-cwd.json
submit_case "cwd through a symlink" symlink-cwd.json
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"true\"], \"timeout\": \"1s\", \"timeout\": \"9h\"}]}")' dupkey.json
submit_case "a field given twice" dupkey.json
gen 'print("{\"tests\": [{\"id\": \"a\", \"cmd\": [\"false\"], \"retries\": 1000000}]}")' retries.json
submit_case "retries: 1000000" retries.json
# What a test prints cannot break reports or drive the terminal.
gen 'import json; print(json.dumps({"tests": [{"id": "odd", "cmd": ["sh", "-c", "printf \"over\\300\\200long \\357\\277\\276\"; printf \"\\033[2J\\033]0;pwned\\007ALL PASSED\" >&2; exit 1"]}]}))' hostile-output.json
try "test printing invalid UTF-8, U+FFFE and terminal escapes" hostile-output.json \
  run hostile-output.json --cache-dir="$work/cc" --json="$work/hostile.json" --junit="$work/hostile.xml"

# Requests that skip coordctl: the coordinator checks every field itself.
# raw_case NAME JSON: a SubmitSuite request sent as it is.
raw_case() {
  local name="$1" request="$2" output code
  set +e
  output=$(echo "$request" | timeout 60 "$bin/tf_raw_submit" "$address" 2>&1 | tr '\n' ' ' | cut -c1-220)
  code=${PIPESTATUS[0]}
  set -e
  record "$name (direct SubmitSuite)" "-" "$code" "$output"
}
test_json() { echo "{\"suite\": {\"name\": \"raw\", \"tests\": [{\"id\": \"a\", \"argv\": [\"true\"], $1}]}}"; }
digest='"sha256": "'"$(printf '%064d' 0)"'", "sizeBytes": "1"'
raw_case "cwd /etc" "$(test_json '"cwd": "/etc"')"
raw_case "input ../../../etc/passwd" "$(test_json '"inputs": [{"path": "../../../etc/passwd", '"$digest"'}]')"
raw_case "input with a malformed digest" "$(test_json '"inputs": [{"path": "a.txt", "sha256": "abc"}]')"
raw_case "env key A=B" "$(test_json '"env": {"A=B": "1"}')"
raw_case "NUL in argv" '{"suite": {"name": "raw", "tests": [{"id": "a", "argv": ["tr\u0000ue"]}]}}'
raw_case "newline in a test id" '{"suite": {"name": "raw", "tests": [{"id": "a\nFAKE LINE", "argv": ["true"]}]}}'
raw_case "retries 1000000" "$(test_json '"retries": 1000000')"
raw_case "timeout of ten years" "$(test_json '"timeoutMs": "315360000000"')"

# Server flags and files.
# bad_start NAME FLAGS...: a coordinator that must refuse to start.
bad_start() {
  local name="$1" output code
  shift
  set +e
  output=$(timeout 30 "$bin/coordinator" --data-dir="$work/bad-start" "$@" 2>&1 | tail -1 | cut -c1-220)
  code=${PIPESTATUS[0]}
  set -e
  output="${output//|/\\|}"
  rows+=("| $name | - | $code | $output | (not started) |")
  echo "$name: exit $code"
}
bad_start "coordinator --lease=0" --listen=127.0.0.1:0 --lease=0
bad_start "coordinator --fleet-reports-per-second=nan" --listen=127.0.0.1:0 \
  --fleet-reports-per-second=nan
printf 'aaaaaaaaaaaaaaaaaaaa alice submit\nbbbbbbbbbbbbbbbbbbbb bob submit\naaaaaaaaaaaaaaaaaaaa mallory admin\n' >"$work/dup-tokens"
bad_start "token file naming one token twice" --listen=127.0.0.1:0 --token-file="$work/dup-tokens"
bad_start "second coordinator on a port in use" --listen="$address"

try "unreachable coordinator" tiny.json submit tiny.json --coordinator=127.0.0.1:1 --cache-dir="$work/cc"
try "unknown suite id" - status no-such-suite --coordinator="$address"

# The REAPI side of the cache: tf_reapi_bad_inputs checks each answer's code,
# that nothing was stored and that the server still serves, and prints the
# table itself.
"$bin/cache_server" --listen=127.0.0.1:0 --data-dir="$work/reapi-cache" >"$work/cache.log" 2>&1 &
cache_pid=$!
reapi_rows=$("$bin/tf_reapi_bad_inputs" "127.0.0.1:$(listening_port "$work/cache.log")")
kill "$cache_pid"

{
  echo "# Bad inputs and what the user sees"
  echo
  echo "Produced by \`scripts/bad-inputs.sh\` on $(date -u +%Y-%m-%d) against \`coordctl\` and a running"
  echo "coordinator (\`--max-suite-tests=200000\`); rows marked \"direct SubmitSuite\" skip coordctl"
  echo "(\`tf_raw_submit\`, what a hostile client can send), so the coordinator's own checks answer."
  echo "After each case the script submits a valid suite: the last column says whether the coordinator"
  echo "still took it. Messages are cut at 220 characters; control characters show escaped."
  echo
  echo "| input | file | exit | what coordctl prints | coordinator still works |"
  echo "| --- | --- | --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
  echo
  echo "## Remote Execution API requests"
  echo
  echo "Sent by \`tf_reapi_bad_inputs\` to a \`cache_server\` (the coordinator's cache service answers"
  echo "the same). Each row's status is the one expected; the last column says that no blob was stored"
  echo "by the request and that the server answered \`GetCapabilities\` afterwards."
  echo
  echo "$reapi_rows"
} >"$out"
echo "wrote $out"
