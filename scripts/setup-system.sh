#!/bin/sh
# Debian packages the test suite drives for real: tmux (the terminal interface snapshot),
# ffmpeg (mp4 output), python3-lmdb + numpy (interchange with upstream's Python LMDB files),
# graphviz (plan --format dot through the real `dot`), slurm-wlm + munge (a real single-host
# Slurm for the exec stage's submission path), sshfs + openssh-server (a real network filesystem
# over loopback, which the store must refuse). cmake and a C++ compiler build the native engine.
# Installs only what is missing, and only where it can (root with apt-get); elsewhere it says
# what is missing and the tests that need it skip with that reason.
set -eu
packages="cmake g++ tmux ffmpeg python3-lmdb python3-numpy graphviz slurm-wlm munge sshfs openssh-server"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "setup: not installing Debian packages (needs root and apt-get); missing:$missing"
  echo "setup: the tests that drive them will skip and say why"
fi
