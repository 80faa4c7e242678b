#!/usr/bin/env bash
# Builds the real Codis binaries the real-binary tests and benchmarks run, from the upstream source tarballs
# (../shared/codis/ beside the project, or CODIS_SOURCES=DIR), with Debian's golang-go in GOPATH mode, offline.
# The binaries are cached in build/codis/<tarball name>/ (or CODIS_CACHE=DIR): a second run with the same tarballs
# does nothing. Installs golang-go and build-essential when they are missing (run as root on a fresh machine).
#
#   build/codis/codis-release2.0-8b4b7d35/   codis-config (the Codis 2 dashboard) and its assets/, codis-proxy,
#                                             codis-ha (the original Go codis-ha, ngaut/codis-ha)
#   build/codis/codis-release3.2-de1ad026/   codis-dashboard, codis-proxy, codis-admin, codis-ha, codis-server
set -euo pipefail
cd "$(dirname "$0")/.."
sources="${CODIS_SOURCES:-$PWD/../shared/codis}"
cache="${CODIS_CACHE:-$PWD/build/codis}"
codis2="$sources/codis-release2.0-8b4b7d35.tar.gz"
codis3="$sources/codis-release3.2-de1ad026.tar.gz"
original_ha="$sources/ngaut-codis-ha-19d580d4-gopath.tar.gz"
for tarball in "$codis2" "$codis3" "$original_ha"; do
  [ -f "$tarball" ] || { echo "build_codis: no source tarball $tarball (set CODIS_SOURCES)" >&2; exit 2; }
done

bin2="$cache/$(basename "$codis2" .tar.gz)"
bin3="$cache/$(basename "$codis3" .tar.gz)"
done2=1 done3=1
for b in codis-config codis-proxy codis-ha assets/statics; do [ -e "$bin2/$b" ] || done2=0; done
for b in codis-dashboard codis-proxy codis-admin codis-ha codis-server; do [ -x "$bin3/$b" ] || done3=0; done
if [ "$done2" = 1 ] && [ "$done3" = 1 ]; then
  echo "build_codis: cached in $cache"
  exit 0
fi

need=()
for pkg in golang-go build-essential; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

gopath="$(mktemp -d /tmp/codis-gopath-XXXXXX)"
trap 'rm -rf "$gopath"' EXIT
export GOPATH="$gopath" GO111MODULE=off GOCACHE="$gopath/.cache"

# The version files read `git log`; inside another repository they would pick up its commit.
version_file() {
  printf 'package utils\n\nconst (\n\tVersion = "%s"\n\tCompile = "go, GOPATH mode"\n)\n' "$1" > pkg/utils/version.go
}

if [ "$done2" = 0 ]; then
  src="$GOPATH/src/github.com/CodisLabs/codis"
  mkdir -p "$src" "$GOPATH/src/github.com/wandoulabs" "$bin2.tmp"
  tar -xzf "$codis2" -C "$src"
  ln -s ../CodisLabs/codis "$GOPATH/src/github.com/wandoulabs/codis"  # the original codis-ha's import path
  tar -xzf "$original_ha" -C "$GOPATH/src"
  (cd "$src" && version_file "release2.0 @8b4b7d35" &&
    go build -ldflags '-s -w' -o "$bin2.tmp/codis-config" ./cmd/cconfig &&
    cp -r cmd/cconfig/assets "$bin2.tmp/" &&
    go build -ldflags '-s -w' -o "$bin2.tmp/codis-proxy" ./cmd/proxy)
  (cd "$GOPATH/src/github.com/ngaut/codis-ha" && go build -ldflags '-s -w' -o "$bin2.tmp/codis-ha" .)
  rm -rf "$bin2" && mv "$bin2.tmp" "$bin2"
  rm -rf "$GOPATH/src/github.com"
fi

if [ "$done3" = 0 ]; then
  src="$GOPATH/src/github.com/CodisLabs/codis"
  mkdir -p "$src" "$bin3.tmp"
  tar -xzf "$codis3" -C "$src"
  (cd "$src" && version_file "release3.2 @de1ad026" &&
    for c in dashboard proxy admin ha; do go build -ldflags '-s -w' -o "$bin3.tmp/codis-$c" "./cmd/$c"; done &&
    (cd extern/redis-3.2.11 && make -s -j"$(nproc)" MALLOC=libc >/dev/null 2>&1) &&
    cp extern/redis-3.2.11/src/redis-server "$bin3.tmp/codis-server")
  rm -rf "$bin3" && mv "$bin3.tmp" "$bin3"
fi
echo "build_codis: built into $cache"
