#!/bin/sh
# A real network filesystem over loopback for tests: a private sshd on 127.0.0.1 and an sshfs
# (FUSE) mount of DIR/export at DIR/mnt.
#
#   sshfs.sh up DIR     mount; on success prints the mount point
#   sshfs.sh down DIR   unmount and stop the sshd
#
# `up` exits 77, with the reason on stderr, where no such mount can be made here (not root, no
# /dev/fuse, sshfs or sshd missing and apt-get unusable); a test should then skip.
set -u
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: sshfs.sh up|down DIR" >&2; exit 2; }

if [ "$cmd" = down ]; then
  if grep -qs " $dir/mnt " /proc/mounts; then
    fusermount3 -u "$dir/mnt" 2>/dev/null || fusermount -u "$dir/mnt" 2>/dev/null || umount -l "$dir/mnt" 2>/dev/null
  fi
  if [ -f "$dir/sshd.pid" ]; then kill "$(cat "$dir/sshd.pid")" 2>/dev/null; rm -f "$dir/sshd.pid"; fi
  exit 0
fi
[ "$cmd" = up ] || { echo "sshfs.sh: unknown command $cmd" >&2; exit 2; }

skip() { echo "no loopback network filesystem: $*" >&2; exit 77; }
[ "$(id -u)" = 0 ] || skip "not root"
[ -c /dev/fuse ] || skip "no /dev/fuse"
if ! command -v sshfs >/dev/null 2>&1 || [ ! -x /usr/sbin/sshd ]; then
  command -v apt-get >/dev/null 2>&1 || skip "sshfs or sshd missing and no apt-get"
  (DEBIAN_FRONTEND=noninteractive apt-get install -y sshfs openssh-server) >"${TMPDIR:-/tmp}/cfpipe-sshfs-apt.log" 2>&1 ||
    skip "apt-get install sshfs openssh-server failed"
fi

mkdir -p "$dir/export" "$dir/mnt" /run/sshd || exit 1
chmod 0700 "$dir"
ssh-keygen -q -t ed25519 -N '' -f "$dir/key" && ssh-keygen -q -t ed25519 -N '' -f "$dir/hostkey" || exit 1
cp "$dir/key.pub" "$dir/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null) || port=$((30000 + $$ % 20000))
cat >"$dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/hostkey
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
StrictModes no
UsePAM no
PidFile $dir/sshd.pid
Subsystem sftp internal-sftp
CONF
/usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" || skip "sshd did not start"
i=0
until [ -s "$dir/sshd.pid" ] || [ $i -ge 50 ]; do sleep 0.1; i=$((i+1)); done
if ! timeout 20 sshfs -p "$port" -o "IdentityFile=$dir/key,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes" \
  "root@127.0.0.1:$dir/export" "$dir/mnt" 2>"$dir/sshfs.err"; then
  cat "$dir/sshfs.err" >&2
  "$0" down "$dir"
  skip "sshfs could not mount over loopback (FUSE mounts may be forbidden here)"
fi
echo "$dir/mnt"
