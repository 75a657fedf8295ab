# Shell helpers the benchmark and soak scripts share; source it from the
# project's top folder:  . scripts/lib.sh

# Sets `bin` to the built binaries; exits 2 when they are not built.
require_build() {
  bin="$PWD/build/bin"
  [ -x "$bin/coordctl" ] || { echo "build first: scripts/build.sh" >&2; exit 2; }
}

now() { date +%s.%N; }

# The median of the numbers on standard input, printed with FORMAT (default
# 3 decimals).
median() {
  sort -g | awk -v f="${1:-%.3f}" '{ a[NR] = $1 } END { printf f, a[int((NR + 1) / 2)] }'
}

# write_suite FILE NAME N CMD...: a suite of N tests t0..t(N-1), each running
# CMD with its index appended (so every test has a key of its own).
write_suite() {
  local file=$1 name=$2 n=$3
  shift 3
  local cmd
  cmd=$(printf '"%s", ' "$@")
  awk -v n="$n" -v name="$name" -v cmd="$cmd" 'BEGIN {
    printf "{\"name\": \"%s\", \"tests\": [", name
    for (i = 0; i < n; i++) printf "%s{\"id\": \"t%d\", \"cmd\": [%s\"%d\"]}", (i ? ", " : ""), i, cmd, i
    print "]}" }' >"$file"
}

# The port a server logged ("listening on port N") in LOG, waiting up to 10 s;
# exits 1 when none shows.
listening_port() {
  local port
  for _ in $(seq 200); do
    port=$(grep -o 'listening on port [0-9]*' "$1" | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && { echo "$port"; return; }
    sleep 0.05
  done
  echo "no port in $1" >&2
  exit 1
}
