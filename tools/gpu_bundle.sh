#!/usr/bin/env bash
# gpu_bundle.sh — build scbench with CUDA (sm_90) on THIS machine and pack what the GPU machine
# needs to run it into one folder (also parity_cuda_prefill, the sparse prefill kernels' parity test,
# and test_retr_scan, the RetrievalAttention host scan's unit test, with libcmocka), so `tools/gpu_check.sh --prebuilt .gpu_bundle` can run the
# CUDA parity test, the engine's end-to-end test and the benchmarks there without building
# (the GPU machine has nvcc and cuBLAS but no cJSON, SQLite headers, utf8proc, PCRE2 or OpenBLAS).
#
#   tools/gpu_bundle.sh [--out DIR] [--build DIR]     # defaults: .gpu_bundle, build-gpu-bundle
#
# The folder holds bundle.tar.xz (xz keeps OpenBLAS's 35 MB small enough for the device tool's
# 64 MiB carry) with: scbench, parity_cuda, bench_cuda, parity_cuda_kvsel and the shared libraries they need that
# are not part of glibc, libstdc++/libgcc or CUDA (libcjson, libsqlite3, libutf8proc, libpcre2-8,
# libz, libopenblas, libgfortran, libquadmath), found with ldd. CUDA's own libraries (cudart,
# cuBLAS) come from the GPU machine; glibc there (2.39) is newer than Debian 12's (2.36), so
# binaries built here run there. gpu_check.sh unpacks it and puts its lib/ on LD_LIBRARY_PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUTD=.gpu_bundle
BUILD=build-gpu-bundle
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUTD=$2; shift 2 ;;
        --build) BUILD=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_bundle: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" -Dcuda=enabled -Dsm_arch=90 -Dpython=python3
fi
# the device methods' kernel parity tests (tests/parity_cuda_<method>.c), when this tree has them
EXTRA=()
for t in parity_cuda_kvsel parity_cuda_prefill parity_cuda_kivi parity_cuda_retr_attn; do
    [ -f "tests/$t.c" ] && EXTRA+=("tests/$t")
done
# the RetrievalAttention host scan's unit test (tools/gpu_retrpipe_job.sh runs it on the GPU host)
[ -f tests/test_retr_scan.c ] && EXTRA+=(tests/test_retr_scan)
ninja -C "$BUILD" -j2 scbench tests/parity_cuda tests/bench_cuda "${EXTRA[@]}"

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bundle/lib"
cp "$BUILD/scbench" "$BUILD/tests/parity_cuda" "$BUILD/tests/bench_cuda" "$STAGE/bundle/"
for t in "${EXTRA[@]}"; do cp "$BUILD/$t" "$STAGE/bundle/"; done
# the shared libraries outside glibc, the GCC runtime and CUDA
for exe in "$STAGE"/bundle/scbench "$STAGE"/bundle/parity_cuda "$STAGE"/bundle/bench_cuda "$STAGE"/bundle/parity_cuda_* \
           "$STAGE"/bundle/test_retr_scan; do
    [ -f "$exe" ] || continue
    ldd "$exe" | awk '/=> \//{print $1, $3}'
done | sort -u | while read -r name path; do
    case "$name" in
        libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
        libcuda.so*|libcudart.so*|libcublas*.so*|libnvidia*) ;;
        *) cp -L "$path" "$STAGE/bundle/lib/$name" ;;
    esac
done
strip --strip-unneeded "$STAGE"/bundle/scbench "$STAGE"/bundle/parity_cuda "$STAGE"/bundle/bench_cuda \
    "$STAGE"/bundle/parity_cuda_* "$STAGE"/bundle/test_retr_scan 2>/dev/null || true
{
    echo "built $(date -u +%FT%TZ) on $(uname -n) from $(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
    echo "glibc: $(ldd --version | head -1)"
    ls -l "$STAGE/bundle" "$STAGE/bundle/lib"
} > "$STAGE/bundle/BUILD_INFO.txt"
rm -rf "$OUTD"
mkdir -p "$OUTD"
tar -C "$STAGE" -cJf "$OUTD/bundle.tar.xz" bundle
cp "$STAGE/bundle/BUILD_INFO.txt" "$OUTD/"
du -sh "$OUTD"
echo "bundle in $OUTD; on the GPU machine: tools/gpu_check.sh --prebuilt $OUTD"
