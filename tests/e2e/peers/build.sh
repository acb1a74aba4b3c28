#!/usr/bin/env bash
# Build the end-to-end test peers from Go modules and extract the CRDs they need.
#
#   kube-apiserver  ./apiserver  (k8s.io/kubernetes + embedded etcd)
#   coredns         ./coredns    (stock CoreDNS, default plugin set)
#   kustomize       ./kustomize  (sigs.k8s.io/kustomize/kustomize/v5, a module of
#                                its own so it cannot move the apiserver's dependencies)
#   promtool        ./promtool   (github.com/prometheus/prometheus/cmd/promtool, the
#                                same: checks and unit-tests the alerting rules)
#   CRDs            ServiceImport / ServiceExport from sigs.k8s.io/mcs-api;
#                   ServiceMonitor / PrometheusRule from the prometheus-operator
#                   module (example/prometheus-operator-crd/), fetched by version
#                   and checked against the hash pinned below
#
# Output goes to ${MCSDNS_PEERS_CACHE:-$HOME/.cache/mcsdns-peers}/<key>/, where
# <key> hashes every go.mod, go.sum and *.go file below here, this script and
# the Go version. When that directory is complete nothing is rebuilt; otherwise Go's
# own module and build caches make every build after the first one cheap.
#
# On success the last lines on stdout are KEY=VALUE pairs:
#   KUBE_APISERVER= COREDNS= SERVICEIMPORT_CRD= SERVICEEXPORT_CRD= KUSTOMIZE=
#   PROMTOOL= SERVICEMONITOR_CRD= PROMETHEUSRULE_CRD= PEERS_DIR=
# Progress and errors go to stderr.
#
# Exit codes: 0 ok, 1 build failure, 3 no usable Go toolchain (go missing or
# older than 1.26.7, which promtool's module requires).
#
# Environment: MCSDNS_PEERS_CACHE (output root), MCSDNS_PEERS_JOBS (go build
# -p, default 2), GOTOOLCHAIN (default "local": never download a toolchain).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${MCSDNS_PEERS_CACHE:-${HOME:-/tmp}/.cache/mcsdns-peers}"
jobs="${MCSDNS_PEERS_JOBS:-2}"

say() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: error: $*" >&2; exit 1; }
unavailable() { echo "build.sh: unavailable: $*" >&2; exit 3; }

command -v go >/dev/null 2>&1 ||
    unavailable "the 'go' command is not on PATH; Go >= 1.26.7 is needed to build the e2e peers"

export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
cd "$here"

gover="$(go env GOVERSION 2>/dev/null)" || unavailable "'go env GOVERSION' failed (is the Go installation broken?)"
if [[ "$gover" =~ ^go([0-9]+)\.([0-9]+) ]]; then
    patch=0
    [[ "$gover" =~ ^go[0-9]+\.[0-9]+\.([0-9]+) ]] && patch="${BASH_REMATCH[1]}"
    [[ "$gover" =~ ^go([0-9]+)\.([0-9]+) ]]
    if (( BASH_REMATCH[1] < 1 || (BASH_REMATCH[1] == 1 && (BASH_REMATCH[2] < 26 ||
                                   (BASH_REMATCH[2] == 26 && patch < 7))) )); then
        unavailable "found $gover, but the peers need Go >= 1.26.7 (promtool/go.mod says 'go 1.26.7')"
    fi
fi

# Build settings. They are part of the cache key through this file's hash.
k8s_version="$(go list -m -mod=readonly -f '{{.Version}}' k8s.io/kubernetes)" ||
    die "cannot read the k8s.io/kubernetes version from $here/go.mod"
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"
version_pkg="k8s.io/component-base/version"
ldflags_apiserver="-s -w -X ${version_pkg}.gitVersion=${k8s_version} -X ${version_pkg}.gitMajor=1"
ldflags_apiserver+=" -X ${version_pkg}.gitMinor=${k8s_minor} -X ${version_pkg}.gitTreeState=clean"
build_flags=(-mod=readonly -trimpath -buildvcs=false -p "$jobs")
# The prometheus-operator CRDs are data, not code: requiring that module in a
# go.mod would pull its whole dependency graph into the build, so it is
# downloaded by version and its module hash (as in go.sum) checked here.
promop_module="github.com/prometheus-operator/prometheus-operator"
promop_version="v0.85.0"
promop_sum="h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="
monitoring_crds=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml)

hash_cmd=sha256sum
command -v sha256sum >/dev/null 2>&1 || hash_cmd="shasum -a 256"
key="$(
    {
        echo "$gover $(go env GOOS GOARCH CGO_ENABLED | tr '\n' ' ')"
        find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum -o -name build.sh \) -print |
            LC_ALL=C sort | while read -r f; do
                echo "$f $($hash_cmd "$f" | cut -d' ' -f1)"
            done
    } | $hash_cmd | cut -c1-16
)"

out="$cache/$key"
mkdir -p "$cache" || die "cannot create cache directory $cache"

# Serialise concurrent builds (e.g. several pytest workers), saying so when
# another one holds the lock.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$cache/.lock"
    if ! flock -n 9; then
        say "waiting for another build (lock $cache/.lock)"
        flock -w 7200 9 || die "timed out waiting for another build holding $cache/.lock"
    fi
fi

report() {
    echo "KUBE_APISERVER=$out/kube-apiserver"
    echo "COREDNS=$out/coredns"
    echo "SERVICEIMPORT_CRD=$out/crds/multicluster.x-k8s.io_serviceimports.yaml"
    echo "SERVICEEXPORT_CRD=$out/crds/multicluster.x-k8s.io_serviceexports.yaml"
    echo "KUSTOMIZE=$out/kustomize"
    echo "PROMTOOL=$out/promtool"
    echo "SERVICEMONITOR_CRD=$out/crds/monitoring.coreos.com_servicemonitors.yaml"
    echo "PROMETHEUSRULE_CRD=$out/crds/monitoring.coreos.com_prometheusrules.yaml"
    echo "PEERS_DIR=$out"
}

# Drop outputs of other source versions unused for a week (this one is
# touched on every use).
prune() {
    find "$cache" -mindepth 1 -maxdepth 1 -type d -name '[0-9a-f]*' ! -name "$key" -mtime +7 \
        -exec rm -rf {} + 2>/dev/null || true
    find "$cache" -mindepth 1 -maxdepth 1 -type f -name 'build-*.log' ! -name "build-$key.log" -mtime +7 \
        -delete 2>/dev/null || true
}

if [[ -f "$out/.complete" && -x "$out/kube-apiserver" && -x "$out/coredns" &&
      -f "$out/crds/multicluster.x-k8s.io_serviceimports.yaml" &&
      -f "$out/crds/multicluster.x-k8s.io_serviceexports.yaml" && -x "$out/kustomize" && -x "$out/promtool" &&
      -f "$out/crds/${monitoring_crds[0]}" && -f "$out/crds/${monitoring_crds[1]}" ]]; then
    touch "$out"
    prune
    say "up to date: $out"
    report
    exit 0
fi

tmp="$out.tmp.$$"
log="$cache/build-$key.log"
rm -rf "$tmp"
mkdir -p "$tmp/crds"
trap 'rm -rf "$tmp"' EXIT
: >"$log"

step() {  # step DESCRIPTION COMMAND...
    local what="$1" start=$SECONDS
    shift
    say "$what ..."
    echo "+ $*" >>"$log"
    if ! "$@" >>"$log" 2>&1; then
        tail -n 60 "$log" >&2
        die "$what failed after $((SECONDS - start))s (full log: $log)"
    fi
    say "$what done in $((SECONDS - start))s"
}

say "building peers with $gover into $out (log: $log); the first build on a machine takes a long time"
step "go mod download sigs.k8s.io/mcs-api" go mod download sigs.k8s.io/mcs-api
step "go build kube-apiserver ($k8s_version)" \
    go build "${build_flags[@]}" -ldflags "$ldflags_apiserver" -o "$tmp/kube-apiserver" ./apiserver
step "go build coredns" \
    go build "${build_flags[@]}" -ldflags "-s -w" -o "$tmp/coredns" ./coredns
step "go build kustomize" \
    go -C kustomize build "${build_flags[@]}" -ldflags "-s -w" -o "$tmp/kustomize" sigs.k8s.io/kustomize/kustomize/v5
step "go build promtool" \
    go -C promtool build "${build_flags[@]}" -ldflags "-s -w" -o "$tmp/promtool" github.com/prometheus/prometheus/cmd/promtool

mcs_dir="$(go list -m -mod=readonly -f '{{.Dir}}' sigs.k8s.io/mcs-api)" ||
    die "cannot locate sigs.k8s.io/mcs-api in the module cache"
[[ -n "$mcs_dir" && -d "$mcs_dir/config/crd" ]] ||
    die "sigs.k8s.io/mcs-api has no config/crd directory (module dir: '${mcs_dir}')"
for kind in serviceimports serviceexports; do
    src="$mcs_dir/config/crd/multicluster.x-k8s.io_${kind}.yaml"
    [[ -f "$src" ]] || die "missing CRD manifest $src"
    cp "$src" "$tmp/crds/"
done

say "go mod download $promop_module@$promop_version ..."
# Outside any module (in $tmp), so no go.mod or go.sum is touched.
promop_json="$(cd "$tmp" && GOWORK=off go mod download -json "$promop_module@$promop_version" 2>>"$log")" ||
    die "go mod download $promop_module@$promop_version failed (log: $log)"
promop_got="$(sed -n 's/^[[:space:]]*"Sum": "\(.*\)",*$/\1/p' <<<"$promop_json")"
promop_dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p' <<<"$promop_json")"
[[ "$promop_got" == "$promop_sum" ]] ||
    die "$promop_module@$promop_version has module hash '$promop_got', expected $promop_sum"
for crd in "${monitoring_crds[@]}"; do
    src="$promop_dir/example/prometheus-operator-crd/$crd"
    [[ -f "$src" ]] || die "missing CRD manifest $src"
    cp "$src" "$tmp/crds/"
done
chmod -R u+w "$tmp"

"$tmp/kustomize" version >>"$log" 2>&1 || die "the built kustomize binary does not run (log: $log)"
"$tmp/promtool" --version >>"$log" 2>&1 || die "the built promtool binary does not run (log: $log)"

"$tmp/coredns" -version >>"$log" 2>&1 || die "the built coredns binary does not run (log: $log)"
plugins="$("$tmp/coredns" -plugins 2>&1)" || die "'coredns -plugins' failed: $plugins"
grep -Eqx '[[:space:]]*(dns\.)?kubernetes' <<<"$plugins" ||
    die "the built coredns binary lacks the kubernetes plugin"

touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
prune
say "built in ${SECONDS}s"
report
