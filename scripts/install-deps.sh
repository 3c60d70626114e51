#!/usr/bin/env bash
# System packages chaos-host uses for its fault mechanisms (Debian/Ubuntu):
#   iproute2  network namespaces and veth (network.mode = "netns")
#   nftables  partitions in netns mode
#   libfaketime  clock skew (clock_skew_peer)
# With --test, also what the test suite needs:
#   chromium  renders report.html headless in the report test
# Installs only what is missing; needs root (or sudo) to install.
set -euo pipefail
missing=()
if [ "${1:-}" = "--test" ]; then
    [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
found=""
for lib in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do
    [ -f "$lib" ] && found="$lib"
done
[ -n "$found" ] || missing+=(libfaketime)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
    echo "install-deps: no apt-get; install ${missing[*]} by hand" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
