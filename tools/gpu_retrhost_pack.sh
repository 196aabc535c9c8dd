#!/usr/bin/env bash
# gpu_retrhost_pack.sh — set up the folder of the retr_attn host-scan GPU job: build scbench,
# parity_cuda_retr_attn and test_retr_scan with CUDA (sm_90) in BUILD, pack them with the shared
# libraries they need that are not glibc, the GCC runtime or CUDA (found with ldd; libcmocka
# included) into DIR/bundle.tar.xz, and copy tools/gpu_retrhost_job.sh as DIR/go.sh and
# tools/make_random_model.py beside it (under 12 MiB in all). Run the job from the root of a
# checkout: `OUT=/some/dir bash DIR/go.sh`.
#
#   tools/gpu_retrhost_pack.sh [--out DIR] [--build DIR]    # defaults: .gpu_retrhost, build-gpu-bundle
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUTD=.gpu_retrhost
BUILD=build-gpu-bundle
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUTD=$2; shift 2 ;;
        --build) BUILD=$2; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_retrhost_pack: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" -Dcuda=enabled -Dsm_arch=90 -Dpython=python3
ninja -C "$BUILD" -j2 scbench tests/parity_cuda_retr_attn tests/test_retr_scan
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bundle/lib"
EXES=("$BUILD/scbench" "$BUILD/tests/parity_cuda_retr_attn" "$BUILD/tests/test_retr_scan")
cp "${EXES[@]}" "$STAGE/bundle/"
for exe in "${EXES[@]}"; do ldd "$exe" | awk '/=> \//{print $1, $3}'; done | sort -u | while read -r name path; do
    case "$name" in
        libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
        libcuda.so*|libcudart.so*|libcublas*.so*|libnvidia*) ;;
        *) cp -L "$path" "$STAGE/bundle/lib/$name" ;;
    esac
done
strip --strip-unneeded "$STAGE"/bundle/scbench "$STAGE"/bundle/parity_cuda_retr_attn "$STAGE"/bundle/test_retr_scan
{
    echo "built $(date -u +%FT%TZ) on $(uname -n) from $(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
    echo "glibc: $(ldd --version | head -1)"
    ls -l "$STAGE/bundle" "$STAGE/bundle/lib"
} > "$STAGE/bundle/BUILD_INFO.txt"
mkdir -p "$OUTD"
rm -f "$OUTD/bundle.tar.xz" "$OUTD/tests.tar.xz" "$OUTD/BUILD_INFO.txt"
tar -C "$STAGE" -cJf "$OUTD/bundle.tar.xz" bundle
cp tools/gpu_retrhost_job.sh "$OUTD/go.sh"
cp tools/make_random_model.py "$OUTD/"
du -sh "$OUTD"
