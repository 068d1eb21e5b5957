#!/usr/bin/env bash
# The seed's four machines (a server and three clients) and an Ansible
# controller as network namespaces on this one machine, each host with its
# own sshd, so that deploy/ansible/c1m-fleet.yml runs for real, over SSH,
# without a second machine.
#
#   netns-fleet.sh up   [--id ID] [--clients N]   create the hosts, print where things are
#   netns-fleet.sh down [--id ID]                 remove everything `up` made
#   netns-fleet.sh run  [--id ID] [--clients N] [-- ANSIBLE-PLAYBOOK ARGS...]
#                       up, run the playbook from the controller namespace, down
#
# What `up` makes (ID defaults to "fleet"; everything is named c1mf-ID-*):
# - a namespace c1mf-ID-br holding bridge br0, and one namespace per host
#   (server, client-1..N, ctl), each joined to br0 by a veth pair created
#   inside the namespaces. Addresses are from 198.18.0.0/15 only (RFC 2544's
#   benchmarking range): server 198.19.0.1, client-K 198.19.0.(10+K),
#   controller 198.19.0.254, /24. The root namespace gets no address, route
#   or interface.
# - /tmp/c1m-fleet-ID/: a throwaway host key and client key (ssh-keygen),
#   authorized_keys, known_hosts, an sshd_config per host listening on that
#   host's address only, the generated inventory.ini, and one work directory
#   per host (namespace hosts share the filesystem: each gets its own, and
#   the playbook's c1m_work_root points there).
# - one sshd per host namespace (openssh-server's /usr/sbin/sshd, started
#   with -f on its own config; /run/sshd is created when missing and removed
#   again by `down`).
#
# `down` kills every process still inside the fleet's namespaces (sshd, and
# whatever a broken run left), deletes the namespaces and the directory.
# `up` and `run` tear everything down on error, Ctrl-C, SIGTERM and SIGHUP;
# `run` also on success, returning the playbook's exit status.
# Needs root, iproute2, openssh-server (sshd, ssh-keygen) and, for `run`,
# ansible-core (pip install ansible-core).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

cmd=${1:-}
[ $# -gt 0 ] && shift
id=${C1M_FLEET_ID:-fleet}
clients=3
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --id) id=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "netns-fleet.sh: unknown argument '$1' (see the comment at the top)" >&2; exit 2 ;;
  esac
done
case $id in
  *[!A-Za-z0-9_-]* | "") echo "netns-fleet.sh: --id '$id': letters, digits, - and _ only" >&2; exit 2 ;;
esac
case $clients in
  [1-9] | [1-9][0-9]) ;;
  *) echo "netns-fleet.sh: --clients '$clients': a number from 1 to 99" >&2; exit 2 ;;
esac

prefix="c1mf-$id"
dir="/tmp/c1m-fleet-$id"
br_ns="$prefix-br"
net=198.19.0

hosts() {
  echo server
  local k
  for ((k = 1; k <= clients; k++)); do echo "client-$k"; done
}

addr_of() {
  case $1 in
    server) echo "$net.1" ;;
    ctl) echo "$net.254" ;;
    client-*) echo "$net.$((10 + ${1#client-}))" ;;
  esac
}

say() { echo "netns-fleet.sh: $*" >&2; }

# Every namespace of this fleet that exists now.
our_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${prefix}-" || true
}

down() {
  local ns pids pid tries
  for ns in $(our_namespaces); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
    fi
  done
  for tries in 1 2 3 4 5 6 7 8 9 10; do
    pids=""
    for ns in $(our_namespaces); do
      pids+=" $(ip netns pids "$ns" 2>/dev/null || true)"
    done
    [ -z "${pids// /}" ] && break
    if [ "$tries" = 10 ]; then
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      sleep 0.2
    else
      sleep 0.3
    fi
  done
  for ns in $(our_namespaces); do
    ip netns del "$ns" 2>/dev/null || say "could not delete namespace $ns"
  done
  # sshd daemons that somehow left their namespace (never expected): by pid file only.
  for pid in "$dir"/ssh/*.pid; do
    [ -f "$pid" ] || continue
    pid=$(cat "$pid" 2>/dev/null || true)
    if [ -n "$pid" ] && grep -qs "$dir/ssh" "/proc/$pid/cmdline"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [ -f "$dir/made-run-sshd" ]; then
    rmdir /run/sshd 2>/dev/null || true
  fi
  rm -rf "$dir"
}

up() {
  if [ "$(id -u)" != 0 ]; then say "needs root (network namespaces, sshd)"; exit 2; fi
  local sshd
  sshd=$(command -v sshd || echo /usr/sbin/sshd)
  [ -x "$sshd" ] || { say "no sshd: apt-get install openssh-server"; exit 2; }
  command -v ssh-keygen >/dev/null || { say "no ssh-keygen: apt-get install openssh-client"; exit 2; }
  if [ -n "$(our_namespaces)" ] || [ -e "$dir" ]; then
    say "a fleet '$id' is already up (namespaces $prefix-* or $dir); run: $0 down --id $id"
    exit 2
  fi
  mkdir -m 700 "$dir" "$dir/ssh"
  if [ ! -d /run/sshd ]; then
    mkdir -m 755 /run/sshd
    touch "$dir/made-run-sshd"
  fi
  ssh-keygen -q -t ed25519 -N '' -C "c1m-fleet-$id host" -f "$dir/ssh/host_key"
  ssh-keygen -q -t ed25519 -N '' -C "c1m-fleet-$id controller" -f "$dir/ssh/id_ed25519"
  cp "$dir/ssh/id_ed25519.pub" "$dir/ssh/authorized_keys"

  ip netns add "$br_ns"
  ip -n "$br_ns" link set lo up
  ip -n "$br_ns" link add br0 type bridge
  ip -n "$br_ns" link set br0 up
  local h ns a
  for h in $(hosts) ctl; do
    ns="$prefix-$h"
    a=$(addr_of "$h")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Both ends are made inside namespaces: eth0 in the host, fl-HOST in
    # the bridge's namespace.
    ip -n "$ns" link add eth0 type veth peer name "fl-$h" netns "$br_ns"
    ip -n "$br_ns" link set "fl-$h" master br0
    ip -n "$br_ns" link set "fl-$h" up
    ip -n "$ns" addr add "$a/24" dev eth0
    ip -n "$ns" link set eth0 up
    mkdir -m 700 "$dir/$h"
  done
  for h in $(hosts); do
    a=$(addr_of "$h")
    cat >"$dir/ssh/sshd-$h.conf" <<EOF
ListenAddress $a
Port 22
HostKey $dir/ssh/host_key
PidFile $dir/ssh/sshd-$h.pid
AuthorizedKeysFile $dir/ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
Subsystem sftp internal-sftp
LogLevel ERROR
EOF
    ip netns exec "$prefix-$h" "$sshd" -f "$dir/ssh/sshd-$h.conf" -E "$dir/ssh/sshd-$h.log"
    echo "$a $(cut -d' ' -f1,2 "$dir/ssh/host_key.pub")" >>"$dir/ssh/known_hosts"
  done
  # Wait until every sshd answers from the controller's namespace.
  local tries
  for h in $(hosts); do
    a=$(addr_of "$h")
    for tries in $(seq 50); do
      if ip netns exec "$prefix-ctl" bash -c "exec 3<>/dev/tcp/$a/22" 2>/dev/null; then break; fi
      [ "$tries" = 50 ] && { say "sshd of $h ($a) does not answer; see $dir/ssh/sshd-$h.log"; exit 1; }
      sleep 0.1
    done
  done
  write_inventory
  say "up: $br_ns, $(hosts | tr '\n' ' ')ctl; inventory $dir/inventory.ini"
}

write_inventory() {
  local py h
  py=$(python3 -c 'import sys; print(sys.executable)')
  {
    echo "# Generated by deploy/ansible/netns-fleet.sh for fleet '$id'."
    echo "[server]"
    echo "server ansible_host=$(addr_of server) ansible_remote_tmp=$dir/server/.ansible-tmp"
    echo "[clients]"
    for h in $(hosts); do
      [ "$h" = server ] && continue
      echo "$h ansible_host=$(addr_of "$h") ansible_remote_tmp=$dir/$h/.ansible-tmp"
    done
    echo "[all:vars]"
    echo "ansible_user=root"
    echo "ansible_ssh_private_key_file=$dir/ssh/id_ed25519"
    # Ansible's ssh masters (ControlPersist) run in the controller's
    # namespace: `down` ends them with everything else there.
    echo "ansible_ssh_common_args='-o UserKnownHostsFile=$dir/ssh/known_hosts -o StrictHostKeyChecking=yes'"
    echo "ansible_python_interpreter=$py"
    echo "c1m_become=false"
    echo "c1m_work_root=$dir"
    # Namespace hosts share one kernel: only per-namespace keys, never fs.*.
    echo "c1m_doctor_apply_args=--netns-only"
  } >"$dir/inventory.ini"
}

# The environment the controller runs ansible-playbook with: Ansible's
# files go under the fleet's directory, not ~/.ansible.
controller_env() {
  echo "ANSIBLE_HOME=$dir/ctl/ansible-home"
  echo "ANSIBLE_LOCAL_TEMP=$dir/ctl/ansible-tmp"
  echo "ANSIBLE_SSH_CONTROL_PATH_DIR=$dir/ctl/cp"
  echo "ANSIBLE_PIPELINING=True"
  echo "ANSIBLE_HOST_KEY_CHECKING=True"
  echo "ANSIBLE_RETRY_FILES_ENABLED=False"
  echo "ANSIBLE_NOCOLOR=1"
}

case $cmd in
  up)
    trap 'status=$?; trap - EXIT INT TERM HUP; if [ $status != 0 ]; then say "up failed, removing what it made"; down; fi; exit $status' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    up
    echo "inventory=$dir/inventory.ini"
    echo "controller_netns=$prefix-ctl"
    controller_env
    ;;
  down)
    down
    ;;
  run)
    command -v ansible-playbook >/dev/null || { say "no ansible-playbook: pip install ansible-core"; exit 2; }
    trap 'status=$?; trap - EXIT INT TERM HUP; down; exit $status' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    up
    mapfile -t envs < <(controller_env)
    ip netns exec "$prefix-ctl" env "${envs[@]}" ansible-playbook \
      -i "$dir/inventory.ini" "$here/c1m-fleet.yml" \
      -e "c1m_binary=$repo/target/release/c1m" "${extra[@]}"
    ;;
  *)
    echo "usage: $0 up|down|run [--id ID] [--clients N] [-- ANSIBLE-PLAYBOOK ARGS]" >&2
    exit 2
    ;;
esac
