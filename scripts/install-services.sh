#!/usr/bin/env bash
# Installs the native services Palisade's test suite runs against:
#   PostgreSQL (initdb + postgres), Redis, SoftHSM2 (+ OpenSC's pkcs11-tool),
#   Prometheus' promtool and OpenSSL, and the real TLS/ACME clients the PKI tests drive:
#   certbot and testssl.sh; and Chromium, which the browser tests (passkeys) drive headless
#   through playwright-core at /usr/bin/chromium.
#
# Debian/Ubuntu only (apt). Idempotent: when every binary is already present it
# exits immediately without touching apt. It does NOT start or enable any system
# service -- the test kit (packages/testkit) starts its own throwaway servers on
# random ports in temporary directories.
#
# Usage:  sudo scripts/install-services.sh
set -euo pipefail

PACKAGES=(postgresql redis-server softhsm2 opensc prometheus openssl curl jq certbot testssl.sh chromium oathtool)

log() { printf '[install-services] %s\n' "$*"; }

# Newest /usr/lib/postgresql/<major>/bin that has initdb (Debian keeps initdb off PATH).
pg_bin_dir() {
  local d best="" best_major=-1 major
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" && -x "$d/postgres" ]] || continue
    major="${d#/usr/lib/postgresql/}"; major="${major%%/*}"
    if [[ "$major" =~ ^[0-9]+$ ]] && (( major > best_major )); then
      best_major=$major; best=$d
    fi
  done
  if [[ -n "$best" ]]; then printf '%s\n' "$best"; return 0; fi
  if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
    dirname "$(command -v initdb)"; return 0
  fi
  return 1
}

missing=()
check_all() {
  missing=()
  if [[ -n "${PALISADE_PG_BIN:-}" && -x "${PALISADE_PG_BIN}/initdb" && -x "${PALISADE_PG_BIN}/postgres" ]]; then
    :
  elif ! pg_bin_dir >/dev/null; then
    missing+=("initdb/postgres")
  fi
  local bin
  for bin in redis-server softhsm2-util pkcs11-tool promtool openssl curl jq certbot testssl chromium oathtool; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
  done
}

check_all
if (( ${#missing[@]} == 0 )); then
  log "all services already installed (postgres: $(pg_bin_dir || echo "\$PALISADE_PG_BIN")) -- nothing to do"
  exit 0
fi

log "missing: ${missing[*]}"

if ! command -v apt-get >/dev/null 2>&1; then
  log "apt-get not found: install ${PACKAGES[*]} with your package manager" >&2
  exit 1
fi

SUDO=()
if (( EUID != 0 )); then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    log "must run as root (or have sudo): sudo $0" >&2
    exit 1
  fi
fi

# Never start services from maintainer scripts (Debian's postgresql/redis
# packages try to start a system instance). policy-rc.d exit code 101 = "action
# forbidden"; only install it if no policy is in place, and remove it afterwards.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
  if (( created_policy )); then "${SUDO[@]}" rm -f "$POLICY"; fi
}
trap cleanup EXIT
if [[ ! -e "$POLICY" ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 0755 "$POLICY"
  created_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
"${SUDO[@]}" apt-get update
log "apt-get install ${PACKAGES[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${PACKAGES[@]}"

check_all
if (( ${#missing[@]} != 0 )); then
  log "still missing after install: ${missing[*]}" >&2
  exit 1
fi
log "done (postgres: $(pg_bin_dir || echo "\$PALISADE_PG_BIN"))"
