#!/bin/bash
# tests/ops/avx512_emu/run.sh: tests/ops with the avx512 ISA emulated (emu512.c) on a CPU without
# AVX-512, from the repository root: `bash tests/ops/avx512_emu/run.sh [seed]`. The copy of
# cpu_backend.c it compiles reports AVX-512 as present; everything else is the real source.
set -e
B=build-emu; mkdir -p $B
python3 - <<'PY'
t = open('src/backend/cpu/cpu_backend.c').read()
for a, b in [('if ((lo & 0xe6) != 0xe6) return false;', '(void)lo;'),
             ('return (b & need_b) == need_b && (c & (1u << 11));', '(void)need_b;\n    return true;')]:
    assert a in t, a
    t = t.replace(a, b)
open('build-emu/cpu_backend_emu.c', 'w').write(t)
PY
SRC="tests/ops/test_ops.c src/backend/backend.c src/backend/cuda_stub.c src/util/error.c src/util/membw.c"
for f in src/backend/cpu/*.c; do
  case $f in *cpu_backend.c | *matmul_avx512.c | *matmul_neon.c) ;; *) SRC="$SRC $f" ;; esac
done
gcc -std=c11 -O2 -Wall -Wextra -Werror -Wno-psabi -D_GNU_SOURCE -Iinclude -Isrc -Itests \
  -Isrc/backend/cpu -mavx2 -mfma -mf16c -o $B/test_ops_emu $SRC $B/cpu_backend_emu.c \
  tests/ops/avx512_emu/emu512.c -lm -lpthread
$B/test_ops_emu "$@"
