#!/usr/bin/env bash
# Install the missing Debian packages of deploy/system-packages.txt.
#
#   deploy/ensure-system-packages.sh [--servers] [--list FILE]
#
# Nothing missing: silent, exit 0. As root: `apt-get install` of what is missing,
# then exit 0 if everything is there. Not root (or no apt-get): one line naming
# the command to run, exit 1. --servers also checks the `servers` group
# (PostgreSQL and Redis themselves, for CI).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
list="$here/system-packages.txt"
groups="base"
while [ $# -gt 0 ]; do
  case "$1" in
    --servers) groups="base servers" ;;
    --list) shift; list="$1" ;;
    *) echo "usage: $0 [--servers] [--list FILE]" >&2; exit 2 ;;
  esac
  shift
done

present() {  # present KIND:NAME
  local kind="${1%%:*}" name="${1#*:}"
  case "$kind" in
    cmd) command -v "$name" >/dev/null 2>&1 || [ -x "/usr/sbin/$name" ] ;;
    lib) grep -q "[[:space:]]$name " <<<"$(/sbin/ldconfig -p 2>/dev/null)" ;;
    py) command -v python3.11 >/dev/null 2>&1 && python3.11 -c "import $name" >/dev/null 2>&1 ;;
    *) echo "$list: unknown check '$1'" >&2; exit 2 ;;
  esac
}

missing() {
  local pkg check group
  while read -r pkg check group _; do
    case "$pkg" in ''|'#'*) continue ;; esac
    case " $groups " in *" $group "*) ;; *) continue ;; esac
    present "$check" || printf '%s\n' "$pkg"
  done <"$list"
}

[ -r "$list" ] || { echo "cannot read the package list $list" >&2; exit 2; }
mapfile -t need < <(missing)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
mapfile -t still < <(missing)
if [ ${#still[@]} -gt 0 ]; then
  echo "still missing after apt-get install: ${still[*]}" >&2
  exit 1
fi
