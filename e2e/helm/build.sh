#!/usr/bin/env bash
# Builds helm v4 and helm v3 from the modules pinned in v4/go.mod and v3/go.mod (no prebuilt binary
# can be downloaded) into a cache outside the work tree, keyed by each go.mod, go.sum and the Go
# version, so a second run finds them at once. Prints the directory holding `helm` (v4) and `helm3`.
#
#   e2e/helm/build.sh                    # build if missing, print the bin dir
#   AZWI_HELM_BIN_DIR=/path build.sh     # use binaries built elsewhere (checked, not rebuilt)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -n "${AZWI_HELM_BIN_DIR:-}" ]]; then
  for b in helm helm3; do
    [[ -x "$AZWI_HELM_BIN_DIR/$b" ]] || { echo "AZWI_HELM_BIN_DIR: $AZWI_HELM_BIN_DIR/$b missing" >&2; exit 1; }
  done
  echo "$AZWI_HELM_BIN_DIR"
  exit 0
fi

# The pinned version of module $2 in $1/go.mod (the `tool` directive keeps it in the require block).
pinned() { awk -v m="$2" '$1 == m {print $2} $1 == "require" && $2 == m {print $3}' "$here/$1/go.mod"; }
v4="$(pinned v4 helm.sh/helm/v4)"
v3="$(pinned v3 helm.sh/helm/v3)"
[[ -n "$v4" && -n "$v3" ]] || { echo "e2e/helm: cannot read the pinned helm versions from go.mod" >&2; exit 1; }

key="$(cat "$here"/v4/go.mod "$here"/v4/go.sum "$here"/v3/go.mod "$here"/v3/go.sum <(go version) \
  | sha256sum | cut -c1-16)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/azwi-webhook/helm/${v4}-${v3}-${key}"
bin="$cache/bin"

if [[ -x "$bin/helm" && -x "$bin/helm3" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"
tmp="$(mktemp -d "$cache/build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# helm reports the version stamped here (`helm version`); without it, it reports the module's
# placeholder, and a chart's kubeVersion or a plugin's version check would see the wrong helm.
# -trimpath and no VCS stamping keep the binaries independent of where the repository lives, so the
# Go build cache is reused across clones.
build() {
  local dir="$1" out="$2" version="$3" major="$4" ldflags="$5" start
  start=$(date +%s)
  (cd "$here/$dir" && GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -trimpath -buildvcs=false \
    -ldflags="-s -w -X helm.sh/helm/$major/internal/version.version=$version$ldflags" \
    -o "$tmp/$out" "helm.sh/helm/$major/cmd/helm")
  echo "built $out ($version) in $(( $(date +%s) - start )) s" >&2
}
build v4 helm "$v4" v4 ""
# helm v3 takes its default Kubernetes version (for `helm template` and lint's deprecation rules) from
# link-time variables that its Makefile derives from client-go (v0.X.Y -> 1.X); unset, it is 1.20.
# helm v4 reads it from the build information by itself.
client_go="$(pinned v3 k8s.io/client-go)"
minor="${client_go#v0.}"; minor="${minor%%.*}"
v3_ldflags=""
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  v3_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
done
build v3 helm3 "$v3" v3 "$v3_ldflags"
mkdir -p "$bin"
mv "$tmp/helm" "$tmp/helm3" "$bin/"
echo "$bin"
