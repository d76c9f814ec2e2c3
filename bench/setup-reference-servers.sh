#!/bin/sh
# Installs the reference XMPP servers the load benchmark compares Amsel with (Debian's Prosody
# and ejabberd) plus what the bench adapters need, and makes sure no system-wide instance runs:
# the adapters (bench/load/servers/{prosody,ejabberd}.ts) start private instances themselves,
# as the current user, from a throw-away directory, on free loopback ports.
#
# Idempotent: safe to run again. Needs root (apt-get). Debian bookworm.
set -eu

if [ "$(id -u)" != 0 ]; then
  echo "run as root (apt-get install)" >&2
  exit 1
fi

PACKAGES="
  prosody
  lua-dbi-sqlite3
  ejabberd
  erlang-p1-sqlite3
  sqlite3
"
# prosody:           0.12.x; mod_smacks, mod_mam, mod_carbons, mod_csi_simple are built in.
# lua-dbi-sqlite3:   Prosody's SQL storage (storage = "sql", driver SQLite3).
# erlang-p1-sqlite3: ejabberd's SQLite backend (sql_type: sqlite); only "Suggests" of ejabberd.
# sqlite3:           CLI, handy for inspecting the bench databases.

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

if [ -n "$missing" ]; then
  # Keep maintainer scripts from starting the system services during the install
  # (policy-rc.d exit 101 = "action forbidden"); only if no policy is in place already.
  created_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  echo "installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
  if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
else
  echo "all packages installed"
fi

# Stop the system instances if something started them, and keep them from starting at boot.
# A process is only signalled if its pidfile names a live process of the service's own system
# user: other Erlang nodes on the machine (e.g. RabbitMQ's beam.smp and epmd) are never touched.
stop_pidfile() { # <pidfile> <user>
  [ -f "$1" ] || return 0
  pid=$(cat "$1" 2>/dev/null || true)
  [ -n "$pid" ] || return 0
  if [ "$(ps -o user= -p "$pid" 2>/dev/null | tr -d ' ')" = "$2" ]; then
    echo "stopping system $2 (pid $pid)"
    kill "$pid" || true
  fi
}
stop_pidfile /run/prosody/prosody.pid prosody
stop_pidfile /run/ejabberd/ejabberd.pid ejabberd
for svc in prosody ejabberd; do
  if [ -d /run/systemd/system ]; then
    # systemd is PID 1: let it stop its own units (no-op when inactive).
    systemctl stop "$svc" >/dev/null 2>&1 || true
  fi
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable "$svc" >/dev/null 2>&1 || true
  fi
  update-rc.d "$svc" disable >/dev/null 2>&1 || true
done

echo "prosody $(dpkg-query -W -f='${Version}' prosody), ejabberd $(dpkg-query -W -f='${Version}' ejabberd): ready"
