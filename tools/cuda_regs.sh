#!/usr/bin/env bash
# cuda_regs.sh — per-kernel resource report of CUDA sources, for checking that a refactoring of
# kernel code compiles to the same machine code: compiles each .cu to an sm_90a cubin with the
# flags of the meson build (-O2, -std=c++17, -lineinfo) and prints one line per kernel
# instantiation: registers, stack frame, spill stores/loads (ptxas -v), the size of its SASS
# and a hash of it (the .text section of the cubin), plus any ptxas performance warning. Needs
# nvcc only (no GPU, no cuobjdump).
#
#   tools/cuda_regs.sh [--root DIR] [FILE.cu ...]   # default: the four prefill attention files
#
# Compare two trees (e.g. a branch against a clean checkout of main):
#   diff <(tools/cuda_regs.sh --root /tmp/main-checkout) <(tools/cuda_regs.sh)
# Equal sha= hashes: the same machine code. Lines are sorted by mangled kernel name per file.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FILES=()
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=$(cd "$2" && pwd); shift 2 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "cuda_regs: unknown option '$1' (try --help)" >&2; exit 2 ;;
        *) FILES+=("$1"); shift ;;
    esac
done
[ ${#FILES[@]} -gt 0 ] || FILES=(kernels/cuda/attn_prefill.cu kernels/cuda/attn_prefill_sm90.cu
                                 kernels/cuda/sparse_prefill.cu kernels/cuda/sparse_prefill_sm90.cu)
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
command -v nvcc >/dev/null || { echo "cuda_regs: nvcc not found" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for f in "${FILES[@]}"; do
    [ -f "$ROOT/$f" ] || { echo "cuda_regs: no file $ROOT/$f" >&2; exit 1; }
    b=$(basename "$f" .cu)
    if ! (cd "$ROOT" && nvcc -O2 -gencode=arch=compute_90a,code=sm_90a -std=c++17 -lineinfo -Xptxas=-v \
            -I/usr/local/cuda/include -I. -cubin -o "$TMP/$b.cubin" "$f") > "$TMP/$b.log" 2>&1; then
        cat "$TMP/$b.log" >&2
        echo "cuda_regs: nvcc failed on $f" >&2
        exit 1
    fi
    python3 - "$TMP/$b.cubin" "$TMP/$b.log" "$f" <<'EOF'
import hashlib, re, struct, sys
cubin, log, src = sys.argv[1:4]
b = open(cubin, 'rb').read()
if b[:4] != b'\x7fELF' or b[4] != 2:
    sys.exit('cuda_regs: %s is not a 64-bit ELF cubin' % cubin)
shoff, = struct.unpack_from('<Q', b, 0x28)
shentsize, shnum, shstrndx = struct.unpack_from('<HHH', b, 0x3A)
sh = [struct.unpack_from('<IIQQQQIIQQ', b, shoff + i * shentsize) for i in range(shnum)]
stro = sh[shstrndx][4]
text = {}
for s in sh:
    name = b[stro + s[0]:b.index(b'\0', stro + s[0])].decode()
    if name.startswith('.text.'):
        text[name[6:]] = b[s[4]:s[4] + s[5]]
info, fn, warn = {}, None, []
for line in open(log, errors='replace'):
    m = re.search(r"Compiling entry function '([^']+)'", line)
    if m:
        fn = m.group(1)
        continue
    m = re.search(r'(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads', line)
    if m and fn:
        info.setdefault(fn, {}).update(stack=m.group(1), st=m.group(2), ld=m.group(3))
    m = re.search(r'Used (\d+) registers', line)
    if m and fn:
        info.setdefault(fn, {})['regs'] = m.group(1)
    if 'Potential Performance Loss' in line or 'warning' in line.lower():
        warn.append(line.strip())
for k in sorted(set(text) | set(info)):
    i = info.get(k, {})
    t = text.get(k, b'')
    print('%s %s regs=%s stack=%s spill_st=%s spill_ld=%s sass=%dB sha=%s' % (
        src, k, i.get('regs', '?'), i.get('stack', '?'), i.get('st', '?'), i.get('ld', '?'), len(t),
        hashlib.sha1(t).hexdigest()[:12]))
for w in warn:
    print('%s ptxas: %s' % (src, re.sub(r'^ptxas info\s*:\s*', '', w)))
EOF
done | { command -v c++filt >/dev/null && c++filt || cat; }
