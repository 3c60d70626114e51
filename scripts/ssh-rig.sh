#!/usr/bin/env bash
# Stand up (or tear down) N sshd "hosts" on this machine for trying nodes on
# remote hosts without other machines, as tests/e2e/remote.rs does: network
# namespaces chrig-K on bridge chrig-br (192.0.2.241/28, clear of the
# machine's own 192.0.2.x), each running Debian's sshd on 192.0.2.(242+K) with keys generated into DIR, and
# DIR/hosts.toml for `chaos-host run --hosts` / `chaos-bench
# --ssh-hosts`. Needs root, iproute2, openssh-server, openssh-client.
#   bash scripts/ssh-rig.sh up 3 /tmp/rig
#   bash scripts/ssh-rig.sh down /tmp/rig
set -euo pipefail
cmd=${1:-}
if [ "$cmd" = up ]; then
    n=$2 dir=$3
    mkdir -p "$dir" /run/sshd
    for k in host_key id; do [ -f "$dir/$k" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/$k"; done
    cp "$dir/id.pub" "$dir/authorized_keys"
    ip link add chrig-br type bridge
    ip addr add 192.0.2.241/28 dev chrig-br
    ip link set chrig-br up
    : > "$dir/known_hosts"; : > "$dir/hosts.toml"
    for ((k = 0; k < n; k++)); do
        addr=192.0.2.$((242 + k))
        ip netns add "chrig-$k"
        ip link add "chrig-v$k" type veth peer name eth0 netns "chrig-$k"
        ip link set "chrig-v$k" master chrig-br up
        ip -n "chrig-$k" addr add "$addr/28" dev eth0
        ip -n "chrig-$k" link set eth0 up
        ip -n "chrig-$k" link set lo up
        printf 'ListenAddress %s\nHostKey %s\nAuthorizedKeysFile %s\nPidFile none\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxSessions 100\nMaxStartups 100\n' \
            "$addr" "$dir/host_key" "$dir/authorized_keys" > "$dir/sshd-$k.conf"
        ip netns exec "chrig-$k" /usr/sbin/sshd -D -e -f "$dir/sshd-$k.conf" </dev/null >/dev/null 2>"$dir/sshd-$k.log" &
        echo "$addr $(cat "$dir/host_key.pub")" >> "$dir/known_hosts"
        printf '[[host]]\nname = "h%s"\naddress = "%s"\nkey = "%s"\nknown_hosts = "%s"\n\n' \
            "$k" "$addr" "$dir/id" "$dir/known_hosts" >> "$dir/hosts.toml"
    done
    for ((k = 0; k < n; k++)); do
        for _ in $(seq 200); do
            timeout 1 bash -c "exec 3<>/dev/tcp/192.0.2.$((242 + k))/22" 2>/dev/null && break
            sleep 0.05
        done
    done
    echo "$dir/hosts.toml"
elif [ "$cmd" = down ]; then
    for ns in $(ip netns list | awk '/^chrig-[0-9]+/ {print $1}'); do
        pids=$(ip netns pids "$ns")
        [ -z "$pids" ] || kill -9 $pids
        ip netns delete "$ns"
    done
    ip link delete chrig-br 2>/dev/null || true
else
    echo "usage: ssh-rig.sh up N DIR | down DIR" >&2
    exit 2
fi
