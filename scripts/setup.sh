#!/usr/bin/env bash
# Installs every Debian 12 package Ferry needs to build, test, fuzz and benchmark.
# Run as root on a fresh machine. Nothing is downloaded from anywhere but Debian.
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then
  echo "setup: run as root (it installs packages with apt-get and loads kernel modules):" \
    "in a root shell 'scripts/setup.sh', otherwise 'su -c scripts/setup.sh' (or sudo where installed)" >&2
  exit 1
fi

packages=(
  # toolchain
  build-essential cmake ninja-build g++ clang clang-format clang-tidy libclang-rt-14-dev pkg-config git
  # libraries
  nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libgtest-dev libgmock-dev
  libprotobuf-dev protobuf-compiler libsqlite3-dev libtomlplusplus-dev libboost-dev libcurl4-openssl-dev
  libarchive-dev libzstd-dev liblz4-dev libssl-dev zlib1g-dev
  # images, mounts and the tools tests and benchmarks compare against
  erofs-utils squashfs-tools squashfuse fuse3 fio attr util-linux kmod procps curl python3 umoci
  # the registry tests: a real registry, htpasswd, skopeo as the oracle, a CA and a token server
  docker-registry apache2-utils skopeo openssl python3-cryptography
  # the containerd snapshotter: gRPC, containerd's snapshots API protos (with gogoproto), and the
  # containerd, runc, ctr-remote and static shell its end-to-end tests run
  libgrpc++-dev protobuf-compiler-grpc golang-github-containerd-containerd-dev golang-github-gogo-protobuf-dev
  containerd runc stargz-snapshotter busybox-static
)

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The kernel modules the tests mount with (built in on some kernels; then modprobe is a no-op).
modprobe fuse 2>/dev/null || true
modprobe erofs 2>/dev/null || true
modprobe loop 2>/dev/null || true
echo "setup: all packages present"
