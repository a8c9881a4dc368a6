#!/usr/bin/env bash
# Prepares a fresh Debian machine: installs Fashion-MNIST (Debian's dataset-fashion-mnist)
# when apt is usable, then builds the release binaries. Without the package, Ember falls back
# to the subset bundled in the binary, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo -n"
  if $sudo_ true 2>/dev/null; then
    echo "setup: installing dataset-fashion-mnist" >&2
    { $sudo_ apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
      || { $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq dataset-fashion-mnist >/dev/null; }; } \
      || echo "setup: could not install dataset-fashion-mnist; using the bundled subset" >&2
  else
    echo "setup: no root for apt; using the bundled Fashion-MNIST subset" >&2
  fi
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust with rustup (stable >= 1.87)" >&2; exit 1; }
echo "setup: cargo build --release --workspace (a few minutes the first time)" >&2
cargo build --release --workspace --quiet
