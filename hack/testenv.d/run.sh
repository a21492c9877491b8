# shellcheck shell=bash
# Sourced by hack/testenv: the up / down / status commands.
# Uses log, die, do_build, BIN_DIR, CACHE_ROOT, K8S_VERSION from hack/testenv.

# Processes in start order; stopped in reverse order.
COMPONENTS=(etcd kube-apiserver kube-controller-manager)

abs_dir() { # DIR -> absolute path (logical, so it appears as given in cmdlines)
  mkdir -p "$1"
  (cd "$1" && pwd)
}

# pid of COMPONENT for DIR if it is alive and really is ours, else nothing.
live_pid() { # DIR COMPONENT
  local pidf="$1/$2.pid" pid cmd
  [[ -f "$pidf" ]] || return 1
  pid=$(cat "$pidf" 2>/dev/null || true)
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)
  # Guard against pid reuse: the command line names the binary and DIR.
  [[ "$cmd" == *"/$2 "* && "$cmd" == *"$1/"* ]] || return 1
  # A zombie is not alive.
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
  echo "$pid"
}

# Ports that something listens on (IPv4 and IPv6), one per line.
listening_ports() {
  # awk, not a bash read loop: /proc/net/tcp can have thousands of lines
  # (TIME_WAIT) and bash reads it byte by byte.
  local h f files=()
  for f in /proc/net/tcp /proc/net/tcp6; do if [[ -r "$f" ]]; then files+=("$f"); fi; done
  (( ${#files[@]} )) || return 0
  awk '$4 == "0A" { n = split($2, a, ":"); print a[n] }' "${files[@]}" |
    while read -r h; do echo $(( 16#$h )); done | sort -un
}

# N free TCP ports, outside the kernel's ephemeral range.
free_ports() { # N
  local n=$1 lo hi min max p taken picked=() tries=0
  read -r lo hi < /proc/sys/net/ipv4/ip_local_port_range || { lo=32768; hi=60999; }
  if (( lo > 12000 )); then min=10000; max=$((lo - 1)); else min=$((hi + 1)); max=65000; fi
  taken=" $(listening_ports | tr '\n' ' ') "
  while (( ${#picked[@]} < n )); do
    (( ++tries < 10000 )) || die "cannot find $n free ports in $min-$max"
    p=$(( min + (RANDOM * 32768 + RANDOM) % (max - min + 1) ))
    [[ "$taken" == *" $p "* ]] && continue
    picked+=("$p"); taken+="$p "
  done
  echo "${picked[@]}"
}

need_openssl() {
  command -v openssl >/dev/null 2>&1 && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "openssl is missing: installing it with 'apt-get install -y openssl' (needed to generate the test CA and certificates)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y openssl >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y openssl >&2; } ||
      die "could not install openssl"
  else
    die "openssl is required (apt-get install openssl)"
  fi
}

# CA, serving cert, client certs and service-account key pair under DIR/pki.
gen_pki() { # DIR
  local pki="$1/pki"
  [[ -f "$pki/.complete" ]] && return 0
  need_openssl
  rm -rf "$pki"; mkdir -p "$pki"; chmod 700 "$pki"
  log "generating CA and certificates in $pki"
  (
    cd "$pki"
    ossl() { openssl "$@" 2>/dev/null || { openssl "$@" >&2; return 1; }; }
    eckey() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
    eckey ca.key
    ossl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=tradeplane-testenv-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out ca.crt
    sign() { # NAME SUBJ EXT
      eckey "$1.key"
      ossl req -new -key "$1.key" -subj "$2" -out "$1.csr"
      printf '%s\n' "$3" > "$1.ext"
      ossl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
        -extfile "$1.ext" -out "$1.crt"
      rm -f "$1.csr" "$1.ext"
    }
    sign apiserver "/CN=kube-apiserver" "$(printf '%s\n' \
      'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' \
      'extendedKeyUsage=serverAuth' \
      'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local')"
    sign kube-controller-manager-serving "/CN=kube-controller-manager" "$(printf '%s\n' \
      'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' \
      'extendedKeyUsage=serverAuth' 'subjectAltName=IP:127.0.0.1,DNS:localhost')"
    local client='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth'
    # Admin: group system:masters = cluster-admin, bypasses RBAC.
    sign admin "/O=system:masters/CN=tradeplane-testenv-admin" "$client"
    # The controller manager runs with --use-service-account-credentials=false,
    # so its own identity needs the rights of every controller it runs
    # (the garbage collector deletes any kind of object): system:masters.
    sign kube-controller-manager "/O=system:masters/CN=system:kube-controller-manager" "$client"
    ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
    ossl pkey -in sa.key -pubout -out sa.pub
    rm -f ca.srl
    chmod 600 ./*.key
    touch .complete
  ) || die "certificate generation failed"
}

b64() { base64 -w0 < "$1"; }

write_kubeconfig() { # FILE SERVER USER CERTBASENAME(in pki)
  local f=$1 server=$2 user=$3 pki; pki="$(dirname "$1")/pki"
  umask 077
  cat > "$f.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tradeplane-testenv
  cluster:
    server: $server
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(b64 "$pki/$4.crt")
    client-key-data: $(b64 "$pki/$4.key")
contexts:
- name: tradeplane-testenv
  context:
    cluster: tradeplane-testenv
    user: $user
    namespace: default
current-context: tradeplane-testenv
EOF
  mv "$f.tmp" "$f"
}

# Start a component detached from the caller: own session, stdio to its log,
# lock fds closed (so `$(hack/testenv up DIR)` returns and locks are released).
spawn() { # DIR NAME ARGS...
  local dir=$1 name=$2; shift 2
  {
    echo "=== $(date -u +%FT%TZ) starting $name"
    printf '%q ' "$BIN_DIR/$name" "$@"; echo
  } >> "$dir/$name.log"
  GOMAXPROCS="${TESTENV_GOMAXPROCS:-2}" setsid "$BIN_DIR/$name" "$@" \
    < /dev/null >> "$dir/$name.log" 2>&1 8>&- 9>&- &
  local pid=$!
  echo "$pid" > "$dir/$name.pid"
  # Until the forked shell has exec'd the binary, its command line is still ours and
  # live_pid would call the component dead: wait for the exec (or the exit).
  local i
  for (( i = 0; i < 100; i++ )); do
    live_pid "$dir" "$name" >/dev/null && return 0
    [[ -e "/proc/$pid" ]] || return 0
    sleep 0.05
  done
}

# Poll CHECK (a command) until it succeeds; fail early when COMPONENT died.
wait_for() { # DIR COMPONENT TIMEOUT_S DESCRIPTION CHECK...
  local dir=$1 name=$2 timeout=$3 what=$4; shift 4
  local deadline=$(( SECONDS + timeout ))
  while ! "$@" >/dev/null 2>&1; do
    if ! live_pid "$dir" "$name" >/dev/null; then
      log "$name exited while waiting for $what; last lines of $dir/$name.log:"
      tail -n 25 "$dir/$name.log" >&2 || true
      return 1
    fi
    if (( SECONDS >= deadline )); then
      log "timed out after ${timeout}s waiting for $what; last lines of $dir/$name.log:"
      tail -n 25 "$dir/$name.log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

https_ok() { # DIR URL  (200 with the admin client certificate)
  curl -sf --max-time 5 --cacert "$1/pki/ca.crt" --cert "$1/pki/admin.crt" --key "$1/pki/admin.key" "$2"
}

apiserver_url() { # DIR
  local port
  port=$(awk -F= '$1=="apiserver"{print $2}' "$1/ports" 2>/dev/null || true)
  [[ -n "$port" ]] && echo "https://127.0.0.1:$port"
}

is_up() { # DIR
  local c url
  for c in "${COMPONENTS[@]}"; do live_pid "$1" "$c" >/dev/null || return 1; done
  [[ -f "$1/kubeconfig" ]] || return 1
  url=$(apiserver_url "$1") || return 1
  https_ok "$1" "$url/readyz" >/dev/null 2>&1
}

# Every live process of COMPONENT for DIR: the one in DIR/COMPONENT.pid plus any
# other whose command line runs .../COMPONENT with DIR/ in its arguments
# (a lost or overwritten pid file must not leave a process behind).
component_pids() { # DIR COMPONENT
  local dir=$1 c=$2 p cmd exe
  {
    live_pid "$dir" "$c" || true
    for p in /proc/[0-9]*; do
      exe=
      { IFS= read -r -d '' exe < "$p/cmdline"; } 2>/dev/null || true
      [[ "${exe##*/}" == "$c" ]] || continue
      cmd=$(tr '\0' '\n' < "$p/cmdline" 2>/dev/null) || continue
      [[ "$cmd" == *"$dir/"* ]] || continue
      [[ "$(awk '{print $3}' "$p/stat" 2>/dev/null)" != Z ]] || continue
      echo "${p#/proc/}"
    done
  } | sort -un
}

# Stop one component: SIGTERM, SIGKILL after TESTENV_STOP_TIMEOUT (5s).
stop_one() { # DIR COMPONENT
  local dir=$1 c=$2 pids deadline
  pids=$(component_pids "$dir" "$c" | tr '\n' ' ')
  if [[ -n "${pids// }" ]]; then
    log "stopping $c (pid ${pids% })"
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    deadline=$(( SECONDS + ${TESTENV_STOP_TIMEOUT:-5} ))
    while [[ -n "$(component_pids "$dir" "$c")" ]]; do
      if (( SECONDS >= deadline )); then
        pids=$(component_pids "$dir" "$c" | tr '\n' ' ')
        log "$c (pid ${pids% }) still running ${TESTENV_STOP_TIMEOUT:-5}s after SIGTERM: SIGKILL"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        deadline=$(( SECONDS + 10 ))
        while [[ -n "$(component_pids "$dir" "$c")" ]] && (( SECONDS < deadline )); do sleep 0.1; done
        [[ -z "$(component_pids "$dir" "$c")" ]] || die "cannot kill $c (pids $pids)"
        break
      fi
      sleep 0.1
    done
  fi
  rm -f "$dir/$c.pid"
}

# Stop in reverse start order, so the apiserver still has etcd while it shuts down.
stop_all() { # DIR
  local i
  for (( i=${#COMPONENTS[@]}-1; i>=0; i-- )); do stop_one "$1" "${COMPONENTS[$i]}"; done
  for i in "${COMPONENTS[@]}"; do rm -f "$1/$i.pid"; done
}

lock_dir() { # DIR: exclusive per-DIR lock on fd 9
  exec 9>"$1/.testenv.lock"
  if ! flock -n 9; then
    log "waiting for another hack/testenv on $1"
    flock 9
  fi
}

port_of() { # DIR NAME -> the port recorded in DIR/ports
  awk -F= -v n="$2" '$1==n{print $2}' "$1/ports"
}

# One component each, on the ports in DIR/ports (so a restart keeps them) and, for etcd,
# the data in DIR/etcd-data (kept across a restart, wiped by `up`).
start_etcd() { # DIR
  local dir=$1 pki="$1/pki" etcd_port peer_port api_port kcm_port
  etcd_port=$(port_of "$dir" etcd); peer_port=$(port_of "$dir" etcd-peer)
  api_port=$(port_of "$dir" apiserver); kcm_port=$(port_of "$dir" kube-controller-manager)
  log "starting etcd on 127.0.0.1:$etcd_port"
  spawn "$dir" etcd \
    --name=testenv \
    --data-dir="$dir/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="testenv=http://127.0.0.1:$peer_port" \
    --initial-cluster-state=new \
    --quota-backend-bytes=$((1024 * 1024 * 1024)) \
    --snapshot-count=1000 \
    --unsafe-no-fsync=true \
    --logger=zap --log-level=warn --log-outputs=stderr
  wait_for "$dir" etcd 30 "etcd health" curl -sf --max-time 2 "http://127.0.0.1:$etcd_port/health" ||
    { stop_all "$dir"; die "etcd did not start (see $dir/etcd.log)"; }
}

start_kube-apiserver() { # DIR
  local dir=$1 pki="$1/pki" etcd_port peer_port api_port kcm_port
  etcd_port=$(port_of "$dir" etcd); peer_port=$(port_of "$dir" etcd-peer)
  api_port=$(port_of "$dir" apiserver); kcm_port=$(port_of "$dir" kube-controller-manager)
  log "starting kube-apiserver $K8S_VERSION on https://127.0.0.1:$api_port"
  spawn "$dir" kube-apiserver \
    --advertise-address=127.0.0.1 \
    --bind-address=127.0.0.1 \
    --secure-port="$api_port" \
    --tls-cert-file="$pki/apiserver.crt" \
    --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --authorization-mode=RBAC \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --allow-privileged=true \
    --disable-admission-plugins=ServiceAccount \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --watch-cache=true \
    --profiling=false \
    --v="${TESTENV_APISERVER_V:-0}"
  wait_for "$dir" kube-apiserver 120 "kube-apiserver /readyz" https_ok "$dir" "https://127.0.0.1:$api_port/readyz" ||
    { stop_all "$dir"; die "kube-apiserver did not become ready (see $dir/kube-apiserver.log)"; }
}

start_kube-controller-manager() { # DIR
  local dir=$1 pki="$1/pki" etcd_port peer_port api_port kcm_port
  etcd_port=$(port_of "$dir" etcd); peer_port=$(port_of "$dir" etcd-peer)
  api_port=$(port_of "$dir" apiserver); kcm_port=$(port_of "$dir" kube-controller-manager)
  write_kubeconfig "$dir/kube-controller-manager.kubeconfig" "https://127.0.0.1:$api_port" \
    system:kube-controller-manager kube-controller-manager
  log "starting kube-controller-manager ($(cat "$dir/controllers"))"
  spawn "$dir" kube-controller-manager \
    --kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$dir/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$kcm_port" \
    --tls-cert-file="$pki/kube-controller-manager-serving.crt" \
    --tls-private-key-file="$pki/kube-controller-manager-serving.key" \
    --controllers="$(cat "$dir/controllers")" \
    --use-service-account-credentials=false \
    --leader-elect=false \
    --kube-api-qps=100 --kube-api-burst=200 \
    --profiling=false \
    --v="${TESTENV_KCM_V:-0}"
  wait_for "$dir" kube-controller-manager 60 "kube-controller-manager /healthz" \
    curl -sf --max-time 2 --cacert "$pki/ca.crt" "https://127.0.0.1:$kcm_port/healthz" ||
    { stop_all "$dir"; die "kube-controller-manager did not become healthy (see $dir/kube-controller-manager.log)"; }
}

# Restart one component of a running control plane (fault tests): stop it, start it
# again with the same ports, flags and (for etcd) data. The others keep running.
cmd_restart() { # DIR COMPONENT
  local dir c=$2
  [[ -d "$1" ]] || die "$1: no control plane"
  dir=$(abs_dir "$1")
  case $c in
    etcd | kube-apiserver | kube-controller-manager) ;;
    apiserver) c=kube-apiserver ;;
    controller-manager) c=kube-controller-manager ;;
    *) die "restart: unknown component '$c' (etcd, apiserver, controller-manager)" ;;
  esac
  [[ -f "$dir/ports" && -f "$dir/controllers" ]] || die "$dir was not started by this hack/testenv"
  lock_dir "$dir"
  stop_one "$dir" "$c"
  "start_$c" "$dir"
  exec 9>&-
  log "restarted $c ($dir)"
}

cmd_status() {
  local dir; [[ -d "$1" ]] || return 1
  dir=$(abs_dir "$1")
  if is_up "$dir"; then log "up: $(apiserver_url "$dir")"; echo "$dir/kubeconfig"; else log "not running"; return 1; fi
}

cmd_down() {
  local dir
  if [[ ! -d "$1" ]]; then log "$1: nothing to stop"; return 0; fi
  dir=$(abs_dir "$1")
  lock_dir "$dir"
  stop_all "$dir"
  exec 9>&-
  log "stopped ($dir)"
}

cmd_up() {
  local dir t0=$SECONDS
  command -v curl >/dev/null 2>&1 || die "curl is required"
  command -v flock >/dev/null 2>&1 || die "flock (util-linux) is required"
  command -v setsid >/dev/null 2>&1 || die "setsid (util-linux) is required"
  dir=$(abs_dir "$1")
  lock_dir "$dir"
  if is_up "$dir"; then
    log "already running for $dir ($(apiserver_url "$dir"))"
    echo "$dir/kubeconfig"
    return 0
  fi
  # Half-started or crashed leftovers: clean slate.
  stop_all "$dir"
  do_build
  gen_pki "$dir"
  local pki="$dir/pki"

  # Pick ports and start under a global lock so concurrent `up`s of different
  # DIRs cannot pick the same ports before the processes bind them.
  mkdir -p "$CACHE_ROOT"
  exec 8>"$CACHE_ROOT/.ports.lock"
  flock 8
  local etcd_port peer_port api_port kcm_port
  read -r etcd_port peer_port api_port kcm_port < <(free_ports 4)
  printf 'etcd=%s\netcd-peer=%s\napiserver=%s\nkube-controller-manager=%s\n' \
    "$etcd_port" "$peer_port" "$api_port" "$kcm_port" > "$dir/ports"

  # Fresh cluster state on every up.
  rm -rf "$dir/etcd-data"
  mkdir -p "$dir/etcd-data"; chmod 700 "$dir/etcd-data"

  # Controllers of kube-controller-manager: the garbage collector and namespace
  # controller, plus TESTENV_EXTRA_CONTROLLERS (comma-separated, e.g.
  # replicaset-controller for the benchmarks' baseline).
  echo "garbage-collector-controller,namespace-controller${TESTENV_EXTRA_CONTROLLERS:+,$TESTENV_EXTRA_CONTROLLERS}" \
    > "$dir/controllers"
  start_etcd "$dir"
  start_kube-apiserver "$dir"
  start_kube-controller-manager "$dir"
  exec 8>&-

  write_kubeconfig "$dir/kubeconfig" "https://127.0.0.1:$api_port" tradeplane-testenv-admin admin
  {
    printf '# generated by hack/testenv up; source it: . %q\n' "$dir/env"
    printf 'export KUBECONFIG=%q\n' "$dir/kubeconfig"
    printf 'export TRADEPLANE_KUBECONFIG=%q\n' "$dir/kubeconfig"
    printf 'export TESTENV_BIN_DIR=%q\n' "$BIN_DIR"
    # shellcheck disable=SC2016 # $PATH expands when env is sourced
    printf 'export PATH=%q:"$PATH"\n' "$BIN_DIR"
  } > "$dir/env"
  exec 9>&-
  log "up in $(( SECONDS - t0 ))s: kube-apiserver $K8S_VERSION at https://127.0.0.1:$api_port (logs: $dir/*.log; source $dir/env)"
  echo "$dir/kubeconfig"
}
