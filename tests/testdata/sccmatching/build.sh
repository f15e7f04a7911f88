#!/usr/bin/env bash
# Builds `scc-admit` (admit.go beside this script: OpenShift's own SCC admission code, the
# sccmatching package of github.com/openshift/apiserver-library-go, run on pods read from stdin)
# from the Go module proxy only, caches it, and prints `SCC_ADMIT=<path>` as the last (and only)
# line on stdout; progress goes to stderr.
#
#   SCC_ADMIT=$(bash tests/testdata/sccmatching/build.sh | sed -n 's/^SCC_ADMIT=//p')
#
# apiserver-library-go, library-go and client-go have no tagged releases and the proxy lists none
# of their versions, so each is pinned by pseudo-version (exact versions the proxy serves; it
# refuses the library-go and client-go commits apiserver-library-go's go.mod names, so newer
# ones stand in: sccmatching uses only library-go's security/uid and client-go's SCC lister).
# sccmatching imports k8s.io/kubernetes's internal core API, which changes between releases, so
# it is built against the k8s.io/kubernetes release apiserver-library-go's go.mod names, and that
# release's own module graph is kept whatever the newer library-go asks for: the scratch module
# replaces every module k8s.io/kubernetes's go.mod requires with the version it names, and (as
# tests/e2e/envtest.sh does for kube-apiserver) those it requires at v0.0.0, its staging
# repositories, with the published v0.<minor>.<patch> (all read from the downloaded go.mod files,
# not written out here). Checksums: GOSUMDB stays sum.golang.org, reached through the proxy; no
# go.sum is kept in the repository.
#
# Everything lives under ${XDG_CACHE_HOME:-~/.cache}/multinode-webhook-sccmatching/; the binary
# appears (by one rename) only once built, and is rebuilt when admit.go changes (its hash names
# the folder). Go's own caches (~/go/pkg/mod, ~/.cache/go-build) are Go's.
#
# Overrides: SCC_LIBRARY_VERSION, SCC_LIBRARY_GO_VERSION, SCC_CLIENT_GO_VERSION (the
# pseudo-versions below), SCC_GOPROXY
# (https://proxy.golang.org), GO (the go command).
set -euo pipefail

LIBRARY=github.com/openshift/apiserver-library-go
# The commit of 2025-09-17 on its master branch (OpenShift 4.21's SCC admission).
LIBRARY_VERSION="${SCC_LIBRARY_VERSION:-v0.0.0-20250917015549-a8019f39f670}"
# library-go: the commit of 2026-10-08, for its package security/uid.
LIBRARY_GO_VERSION="${SCC_LIBRARY_GO_VERSION:-v0.0.0-20261008081759-c51f6ebeb7cb}"
# client-go: the commit of 2025-10-15, for the SCC lister sccmatching's matcher names.
CLIENT_GO_VERSION="${SCC_CLIENT_GO_VERSION:-v0.0.0-20251015124057-db0dee36e235}"
HERE="$(cd "$(dirname "$0")" && pwd)"

log() { printf 'sccmatching/build.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

GO_CMD="${GO:-}"
if [[ -z "$GO_CMD" ]]; then
    GO_CMD=$(command -v go || true)
    [[ -z "$GO_CMD" && -x /usr/local/go/bin/go ]] && GO_CMD=/usr/local/go/bin/go
fi
if [[ -z "$GO_CMD" ]] || ! command -v "$GO_CMD" >/dev/null 2>&1; then
    die "go not found; install Go (1.26 or later, https://go.dev/doc/install) and put it on PATH, or set GO=/path/to/go"
fi

source_hash="$(printf '%s %s\n' "$LIBRARY_GO_VERSION $CLIENT_GO_VERSION" "$(sha256sum <"$HERE/admit.go")" | sha256sum | cut -c1-12)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/multinode-webhook-sccmatching"
OUT="$CACHE/$LIBRARY_VERSION-$source_hash"

if [[ -x "$OUT/scc-admit" ]]; then
    echo "SCC_ADMIT=$OUT/scc-admit"
    exit 0
fi

mkdir -p "$CACHE"
# One build at a time: a second run waits, then finds the binary the first one built.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/.lock"
    flock 9
    if [[ -x "$OUT/scc-admit" ]]; then
        echo "SCC_ADMIT=$OUT/scc-admit"
        exit 0
    fi
    rm -rf "$CACHE"/.building-*
fi

# The module proxy alone (no `direct`) and the public checksum database, as envtest.sh sets them.
export GOPROXY="${SCC_GOPROXY:-https://proxy.golang.org}"
export GOSUMDB=sum.golang.org
export GOFLAGS="-mod=mod -buildvcs=false"
export GOWORK=off
export GOTOOLCHAIN=local
export CGO_ENABLED=0
unset GONOSUMDB GONOSUMCHECK GONOPROXY GOPRIVATE GOINSECURE GOFIPS140 2>/dev/null || true

staging="$(mktemp -d "$CACHE/.building-XXXXXX")"
trap 'rm -rf "$staging"' EXIT

# The Version of module $2 in the Require list of go.mod $1.
required() {
    "$GO_CMD" mod edit -json "$1" |
        awk -v want="$2" '/"Path":/ { gsub(/[",]/, "", $2); path = $2 }
                          /"Version":/ && path == want { gsub(/[",]/, "", $2); print $2; exit }'
}
# go.mod file of module@version, downloaded through the proxy.
gomod_of() {
    local info
    info="$(cd "$staging" && "$GO_CMD" mod download -json "$1")" || die "could not download $1: $info"
    printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"GoMod": "\([^"]*\)".*/\1/p'
}

log "downloading $LIBRARY@$LIBRARY_VERSION from $GOPROXY"
library_mod="$(gomod_of "$LIBRARY@$LIBRARY_VERSION")"
[[ -f "$library_mod" ]] || die "no go.mod for $LIBRARY@$LIBRARY_VERSION"
k8s_version="$(required "$library_mod" k8s.io/kubernetes)"
[[ "$k8s_version" == v1.* ]] || die "$LIBRARY@$LIBRARY_VERSION names no k8s.io/kubernetes v1.x"
kubernetes_mod="$(gomod_of "k8s.io/kubernetes@$k8s_version")"
# Every requirement of k8s.io/kubernetes as `path version`, its staging modules at v0.<minor>.
pinned="$("$GO_CMD" mod edit -json "$kubernetes_mod" |
    awk -v staged="v0.${k8s_version#v1.}" '
         /^\t"[A-Za-z]+": / { section = $1 }
         section == "\"Require\":" && /"Path":/ { gsub(/[",]/, "", $2); path = $2 }
         section == "\"Require\":" && /"Version":/ {
             gsub(/[",]/, "", $2); print path, ($2 == "v0.0.0" ? staged : $2) }')"
grep -q " v0.${k8s_version#v1.}\$" <<<"$pinned" || die "found no v0.0.0 requirements in $kubernetes_mod"
log "k8s.io/kubernetes $k8s_version: keeping its $(wc -l <<<"$pinned") requirements at their versions"

src="$staging/src"
mkdir -p "$src"
cp "$HERE/admit.go" "$src/main.go"
{
    echo "// Written by tests/testdata/sccmatching/build.sh: builds scc-admit."
    echo "module multinode-webhook.local/scc-admit"
    echo
    echo "go $("$GO_CMD" mod edit -json "$library_mod" | sed -n 's/^[[:space:]]*"Go": "\([^"]*\)".*/\1/p')"
    echo
    echo "require ("
    printf '\t%s %s\n' "$LIBRARY" "$LIBRARY_VERSION" github.com/openshift/library-go \
        "$LIBRARY_GO_VERSION" k8s.io/kubernetes "$k8s_version"
    echo ")"
    echo
    echo "replace ("
    printf '\t%s => %s %s\n' github.com/openshift/client-go github.com/openshift/client-go \
        "$CLIENT_GO_VERSION"
    printf '\t%s => %s %s\n' k8s.io/kubernetes k8s.io/kubernetes "$k8s_version"
    while read -r module version; do
        printf '\t%s => %s %s\n' "$module" "$module" "$version"
    done <<<"$pinned"
    echo ")"
} >"$src/go.mod"

log "resolving scc-admit's dependencies (go mod tidy; checksums verified by sum.golang.org)"
(cd "$src" && "$GO_CMD" mod tidy) >&2
log "compiling scc-admit"
(cd "$src" && "$GO_CMD" build -trimpath -ldflags "-s -w" -o "$staging/scc-admit" .) >&2

chmod 755 "$staging"
rm -rf "$staging/src" "$OUT"
mv "$staging" "$OUT"
trap - EXIT
log "built $OUT/scc-admit ($LIBRARY $LIBRARY_VERSION, library-go $LIBRARY_GO_VERSION, k8s.io/kubernetes $k8s_version)"
echo "SCC_ADMIT=$OUT/scc-admit"
