#!/usr/bin/env bash
# Installs the command-line validators that tests/contract/test_deploy.py runs:
#   promtool        - from Debian's `prometheus` package (checks and unit-tests alert rules)
#   docker-compose  - Debian's Compose v1 (validates docker-compose.yml without an engine)
#   openssl         - makes the throwaway CAs and certificates of the TLS tests
#   chromium, chromedriver - Debian's `chromium` and `chromium-driver`: the headless
#                     browser tests/integration/test_operator_page_browser.py drives with
#                     selenium (pinned in the dev extras; never a downloaded browser build)
# and kubernetes-validate into the project virtualenv when one exists.
#
# Idempotent: a tool already on PATH is not reinstalled, so calling this from
# `make test` costs nothing after the first run. Needs root (or sudo) only when
# something is actually missing. The prometheus server shipped by the package is
# not wanted on a developer machine: if the package started it, it is stopped and
# disabled again (only promtool is used).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Kept equal to the pin in pyproject.toml's dev extras.
KUBERNETES_VALIDATE_PIN="kubernetes-validate==1.37.0"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)

apt_install() {
  # Another process (a parallel build, unattended-upgrades) may hold the dpkg lock:
  # wait for it instead of failing.
  local tries=0
  export DEBIAN_FRONTEND=noninteractive
  until $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "$@"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 3 ]; then
      echo "install-tools: apt-get install $* failed" >&2
      return 1
    fi
    sleep 5
    $SUDO apt-get -o DPkg::Lock::Timeout=300 update -q || true
  done
}

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-tools: installing ${missing[*]}"
  # A fresh machine has no package lists yet; refresh once before installing.
  $SUDO apt-get -o DPkg::Lock::Timeout=300 update -q
  apt_install "${missing[@]}"
  # Only the promtool binary is needed; do not leave a Prometheus server running.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 \
    && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
else
  echo "install-tools: promtool, docker-compose, openssl, chromium and chromedriver already present"
fi

if [ -x .venv/bin/python ]; then
  if ! .venv/bin/python -c "import kubernetes_validate" >/dev/null 2>&1; then
    echo "install-tools: installing ${KUBERNETES_VALIDATE_PIN} into .venv"
    .venv/bin/pip install -q "${KUBERNETES_VALIDATE_PIN}"
  fi
fi

promtool --version 2>&1 | head -n 1
docker-compose version --short
chromedriver --version
