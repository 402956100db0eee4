#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from the modules pinned in go.mod (no prebuilt binary can
# be downloaded) into a cache outside the work tree, keyed by go.mod, go.sum and the Go version, so a
# second run finds them at once. Prints the directory holding the three binaries.
#
#   e2e/controlplane/build.sh            # build if missing, print the bin dir
#   AZWI_E2E_BIN_DIR=/path build.sh      # use binaries built elsewhere (checked, not rebuilt)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -n "${AZWI_E2E_BIN_DIR:-}" ]]; then
  for b in kube-apiserver kubectl etcd; do
    [[ -x "$AZWI_E2E_BIN_DIR/$b" ]] || { echo "AZWI_E2E_BIN_DIR: $AZWI_E2E_BIN_DIR/$b missing" >&2; exit 1; }
  done
  echo "$AZWI_E2E_BIN_DIR"
  exit 0
fi

key="$(cat "$here/go.mod" "$here/go.sum" <(go version) | sha256sum | cut -c1-16)"
kube_version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/go.mod")"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/azwi-webhook/controlplane/${kube_version}-${key}"
bin="$cache/bin"

if [[ -x "$bin/kube-apiserver" && -x "$bin/kubectl" && -x "$bin/etcd" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"
tmp="$(mktemp -d "$cache/build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cd "$here"
# The version is stamped as Kubernetes' own release build does: without it /version reports
# v0.0.0-master, and clients that choose features by server version (the webhook picks native
# sidecars from it) would see a server older than any release.
minor="${kube_version#v1.}"; minor="${minor%%.*}"
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
# -trimpath and no VCS stamping keep the binaries independent of where the repository lives, so the
# Go build cache is reused across clones.
build() {
  local out="$1" pkg="$2" start
  start=$(date +%s)
  GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="-s -w$ldflags" \
    -o "$tmp/$out" "$pkg"
  echo "built $out in $(( $(date +%s) - start )) s" >&2
}
build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubectl k8s.io/kubernetes/cmd/kubectl
mkdir -p "$bin"
mv "$tmp/etcd" "$tmp/kube-apiserver" "$tmp/kubectl" "$bin/"
echo "$bin"
