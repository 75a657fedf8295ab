#!/usr/bin/env bash
# Installs what Testfleet needs to build and test on Debian 12. Idempotent:
# when everything is present it changes nothing and does not touch the network.
set -euo pipefail

# --build-only: what building needs, nothing the tests need (container images).
build_only=false
if [ "${1:-}" = "--build-only" ]; then build_only=true; shift; fi
packages=(
  build-essential cmake ninja-build pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libabsl-dev libssl-dev libxxhash-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libspdlog-dev prometheus-cpp-dev
  libcpp-httplib-dev  # the dashboard's HTTP server
  libjemalloc-dev  # jemalloc for the servers (BENCHMARKS.md, issue 19)
  bazel-bootstrap-source  # the Remote Execution API protos (proto/)
)
$build_only || packages+=(
  time            # /usr/bin/time, for bench/run_telemetry.sh
  libxml2-utils   # xmllint, validates JUnit reports in the tests
  chromium        # renders the HTML report in the tests
  iproute2        # ip netns: the network-cut test's second host
  openssl         # certificates for the TLS tests
  clang libclang-rt-14-dev  # libFuzzer targets (scripts/fuzz.sh)
  python3 python3-yaml      # checks the Kubernetes manifests in docker/k8s
  bazel-bootstrap           # Bazel 4.2: a real REAPI client of the cache
)
# Node.js drives Chromium in the dashboard's browser tests; a machine whose
# Node.js came from elsewhere (with its own npm) keeps it.
if ! $build_only; then
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
fi
# Extra packages for a caller's purpose, e.g. the benchmark peers.
packages+=("$@")

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
# puppeteer-core for the browser tests, at the versions package-lock.json
# fixes; no browser download (they use Debian's Chromium).
install_browser_test_modules() {
  $build_only && return 0
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/integration_tests/browser"
  if [ -f "$dir/node_modules/.package-lock.json" ] &&
      cmp -s "$dir/package-lock.json" "$dir/node_modules/.lock-installed"; then
    return 0
  fi
  echo "install-deps: npm ci in integration_tests/browser"
  (cd "$dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error &&
    cp package-lock.json node_modules/.lock-installed)
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  install_browser_test_modules
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root (missing: ${missing[*]})" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_browser_test_modules
