#!/usr/bin/env bash
# A local control plane for the end-to-end suite: etcd and kube-apiserver on loopback, built from the
# modules pinned in e2e/controlplane (see build.sh), with RBAC, the default admission chain,
# service-account token signing and the ClusterTrustBundle API and projection.
#
#   e2e/cluster.sh up DIR     start it; DIR receives the state, logs and kubeconfigs (see below)
#   e2e/cluster.sh down DIR   stop it (every process it started, whatever state it is in)
#
# With AZWI_E2E_WEBHOOK_IDENTITY=0, the webhook's namespace, service account and RBAC are not
# installed (for installing them another way, e.g. with the Helm chart). With AZWI_E2E_OWNER_PID set, a watchdog stops the control plane when that process ends, so a run
# that crashes or is killed leaves nothing behind. DIR/env holds, as shell assignments:
#   KUBECONFIG                    admin (system:masters) kubeconfig
#   AZWI_E2E_WEBHOOK_KUBECONFIG   kubeconfig of ServiceAccount azure-wi-webhook-admin, bound to exactly
#                                 the RBAC of manifests/base/rbac.yaml
#   AZWI_E2E_APISERVER            https://127.0.0.1:PORT
#   AZWI_E2E_ADMISSION_CLIENT_CA  CA of the client certificate kube-apiserver presents to webhooks
#   AZWI_E2E_BIN_DIR              kube-apiserver, kubectl and etcd
#
# kube-apiserver runs in a private mount namespace whose /etc/hosts also maps the webhook's Service
# DNS names to 127.0.0.1: a webhook configured by `url: https://<service>.<namespace>.svc:PORT` is
# then dialled on loopback, with TLS verified against the name a cluster would use. Nothing else on
# the machine sees that mapping.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

usage() { echo "usage: $0 up|down DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
cmd="$1"
mkdir -p "$2"
dir="$(cd "$2" && pwd)"

WEBHOOK_NAMESPACE=azure-workload-identity-system
WEBHOOK_SERVICE=azure-wi-webhook-webhook-service
WEBHOOK_SERVICE_ACCOUNT=azure-wi-webhook-admin

stop() {
  local pidfile pid
  for pidfile in "$dir"/pids/*; do
    [[ -f "$pidfile" ]] || continue
    pid="$(cat "$pidfile")"
    # Each component leads its own process group (setsid), so this also reaches anything it forked.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    local alive=0
    for pidfile in "$dir"/pids/*; do
      [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null && alive=1
    done
    [[ $alive -eq 0 ]] && break
    sleep 0.1
  done
  for pidfile in "$dir"/pids/*; do
    [[ -f "$pidfile" ]] || continue
    kill -KILL -- "-$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

if [[ "$cmd" == down ]]; then
  stop
  exit 0
fi
[[ "$cmd" == up ]] || usage

stop # a previous run in the same DIR must not leave its processes holding the data dir
bin="$("$here/controlplane/build.sh")"
pki="$dir/pki"
mkdir -p "$pki" "$dir/pids" "$dir/logs"
rm -rf "$dir/etcd-data"

free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r etcd_port etcd_peer_port api_port < <(free_ports 3)

# ---- PKI (openssl; strict Go parsers read all of it)
ossl() { openssl "$@" 2>/dev/null; }
new_ca() { # name cn
  ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -subj "/CN=$2" -keyout "$pki/$1.key" -out "$pki/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}
new_leaf() { # name ca cn extensions...
  local name="$1" ca="$2" cn="$3"; shift 3
  ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
    -keyout "$pki/$name.key" -out "$pki/$name.csr"
  printf '%s\n' "$@" > "$pki/$name.ext"
  ossl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -CAcreateserial \
    -days 7 -extfile "$pki/$name.ext" -out "$pki/$name.crt"
}
new_ca ca "azwi-e2e cluster CA"
new_leaf apiserver ca kube-apiserver \
  "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc" \
  "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature"
new_ca admission-client-ca "azwi-e2e admission client CA"
new_leaf admission-client admission-client-ca kube-apiserver-admission \
  "extendedKeyUsage=clientAuth" "keyUsage=critical,digitalSignature"
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key"
ossl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
admin_token="$(openssl rand -hex 24)"
echo "$admin_token,azwi-e2e-admin,azwi-e2e-admin,system:masters" > "$pki/tokens.csv"
chmod 600 "$pki"/*.key "$pki/tokens.csv"

# kube-apiserver presents the admission client certificate to every webhook ("*" matches any host);
# a webhook started with --client-ca-file=$pki/admission-client-ca.crt accepts it.
cat > "$dir/admission-kubeconfig.yaml" <<EOF
apiVersion: v1
kind: Config
users:
  - name: "*"
    user:
      client-certificate: $pki/admission-client.crt
      client-key: $pki/admission-client.key
EOF
cat > "$dir/admission-config.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: MutatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: $dir/admission-kubeconfig.yaml
  - name: ValidatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: $dir/admission-kubeconfig.yaml
EOF
{ cat /etc/hosts; echo "127.0.0.1 $WEBHOOK_SERVICE.$WEBHOOK_NAMESPACE.svc $WEBHOOK_SERVICE.$WEBHOOK_NAMESPACE.svc.cluster.local"; } > "$dir/hosts"

# ---- processes
start() { # name command...
  local name="$1"; shift
  setsid "$@" > "$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/pids/$name"
}
wait_for() { # what seconds command...
  local what="$1" seconds="$2"; shift 2
  local until=$(( $(date +%s) + seconds ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= until )); then
      echo "cluster.sh: $what not up within ${seconds}s; last log lines:" >&2
      tail -n 30 "$dir/logs/"*.log >&2
      stop
      exit 1
    fi
    sleep 0.2
  done
}

start etcd "$bin/etcd" --name e2e --data-dir "$dir/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "e2e=http://127.0.0.1:$etcd_peer_port" \
  --unsafe-no-fsync --log-level warn
if [[ -n "${AZWI_E2E_OWNER_PID:-}" ]]; then
  # Started before anything slow, so the owner dying at any later point still stops everything.
  setsid bash -c 'while kill -0 "$0" 2>/dev/null; do sleep 1; done; exec "$1" down "$2"' \
    "$AZWI_E2E_OWNER_PID" "$here/cluster.sh" "$dir" > "$dir/logs/watchdog.log" 2>&1 < /dev/null &
fi
wait_for etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health"

start kube-apiserver unshare --mount --propagation private -- sh -c \
  'mount --bind "$0" /etc/hosts && exec "$@"' "$dir/hosts" \
  "$bin/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
  --authorization-mode RBAC --allow-privileged=true \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 \
  --endpoint-reconciler-type none \
  --feature-gates ClusterTrustBundle=true,ClusterTrustBundleProjection=true \
  --admission-control-config-file "$dir/admission-config.yaml" \
  --profiling=false
wait_for kube-apiserver 120 curl -sf --cacert "$pki/ca.crt" -H "Authorization: Bearer $admin_token" \
  "https://127.0.0.1:$api_port/readyz"

api="https://127.0.0.1:$api_port"
kubeconfig() { # file user-yaml
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster:
      server: $api
      certificate-authority: $pki/ca.crt
users:
  - name: user
    user:
      token: $2
contexts:
  - name: e2e
    context: {cluster: e2e, user: user}
current-context: e2e
EOF
  chmod 600 "$1"
}
kubeconfig "$dir/admin.kubeconfig" "$admin_token"
export KUBECONFIG="$dir/admin.kubeconfig"
kubectl="$bin/kubectl"

if [[ "${AZWI_E2E_WEBHOOK_IDENTITY:-1}" != 0 ]]; then
  # The webhook's identity, installed from the shipped manifests (namespace, service account, RBAC).
  # The files spell out their namespace, so they apply as they are (kustomize only adds labels).
  "$kubectl" apply -f "$repo/manifests/base/namespace.yaml" -f "$repo/manifests/base/service-account.yaml" \
    -f "$repo/manifests/base/rbac.yaml" > "$dir/logs/install.log"
  webhook_token="$("$kubectl" -n "$WEBHOOK_NAMESPACE" create token "$WEBHOOK_SERVICE_ACCOUNT" --duration 24h)"
  kubeconfig "$dir/webhook.kubeconfig" "$webhook_token"
fi

cat > "$dir/env" <<EOF
KUBECONFIG=$dir/admin.kubeconfig
AZWI_E2E_WEBHOOK_KUBECONFIG=$dir/webhook.kubeconfig
AZWI_E2E_APISERVER=$api
AZWI_E2E_ADMISSION_CLIENT_CA=$pki/admission-client-ca.crt
AZWI_E2E_BIN_DIR=$bin
EOF
echo "control plane up: $api ($("$kubectl" version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')); state in $dir" >&2
