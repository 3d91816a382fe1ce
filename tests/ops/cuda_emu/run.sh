#!/bin/bash
# tests/ops/cuda_emu/run.sh: CUDA kernel files run on the CPU under emu_cuda.h, from the repository
# root. x86-64 only; no GPU. EMU_SEED=n: another order of the threads (and of copy landings).
#
# `bash tests/ops/cuda_emu/run.sh [quick]`: the device sampling kernels
# (src/backend/cuda/cuda_sample.cu, copied unchanged) against the host sampler (quick: ~2 minutes,
# else ~20). It aborts, naming the line, at a barrier or warp intrinsic that not every thread of
# the block / lane of the warp reaches together. Shared memory and the row state are random bytes
# at each block / call (a read of what was not written shows). EMU_LAG=bytes: the last bytes of
# the logits change during the chain, as an upload that races the op delivers them (the kernels
# then fail: wrong ids, other bits on a rerun, or a crash).
#
# `bash tests/ops/cuda_emu/run.sh argmax`: the one-launch greedy op of the same file alone (~30 s;
# the sampler runs also check it, and that both put their rows where cu_chosen_dst says).
#
# `bash tests/ops/cuda_emu/run.sh gemv`: the one-token persistent GEMV (v7,
# src/backend/cuda/cuda_gemv_tma.cu with cuda_bulk.cuh, cuda_mma.cuh and cuda_switches.h, copied)
# through its launcher against a double-precision reference (test_gemv_emu.cpp; EMU_CASE=substring:
# those cases only), with 7, 1 and 3 blocks (EMU_SMS=n: n only). The inline PTX comes from this folder's
# cuda_ptx.cuh (mbarriers, bulk copies landing at random later rounds, named barriers, mma.sync,
# wgmma run only when a wait_group retires it, reading its A registers and B then),
# which the copies find through -I: the build folder must hold no cuda_ptx.cuh or cuda_internal.h.
# The one change to the copied kernel file: `extern __shared__ __align__(128) uint8_t sm[];` (a
# CUDA dynamic shared-memory array) becomes a pointer to the launch's emulated buffer.
# `bash tests/ops/cuda_emu/run.sh gemv_batch`: the batched GEMV for 2-64 tokens (v8,
# src/backend/cuda/cuda_gemv_batch.cu, copied the same way) through its launcher against a
# double-precision reference (test_gemv_batch_emu.cpp; EMU_CASE, EMU_SMS as for gemv).
# EMU_BUILD: the build folder (default build-emu; ctest passes its own).
set -e
B=${EMU_BUILD:-build-emu}; mkdir -p $B
E=tests/ops/cuda_emu
CXXFLAGS="-std=c++17 -O2 -g -Wall -Wextra -Werror -Wno-unused-function -ffp-contract=off"
LD="-Wl,-T,$E/emu_shared.ld" # the __shared__ section, with the function templates' (emu_shared.ld)
g++ $CXXFLAGS -I$E -Iinclude -Isrc -c -o $B/emu_cuda.o $E/emu_cuda.cpp
case "$1" in # a GEMV kernel file (K) and its test (T)
  gemv) K=cuda_gemv_tma T=test_gemv_emu ;;
  gemv_batch) K=cuda_gemv_batch T=test_gemv_batch_emu ;;
  *) K= ;;
esac
if [ -n "$K" ]; then
  shift
  S=src/backend/cuda
  rm -f $B/cuda_ptx.cuh $B/cuda_internal.h
  cp $S/cuda_bulk.cuh $S/cuda_mma.cuh $S/cuda_switches.h $B/
  SM='extern __shared__ __align__(128) uint8_t sm\[\];'
  [ "$(grep -c "^ *$SM\$" $S/$K.cu)" = 1 ] ||
    { echo "run.sh: the dynamic shared-memory declaration of $K.cu changed"; exit 1; }
  sed "s/$SM/uint8_t *const sm = emu_dyn_smem();/" $S/$K.cu > $B/${K}_emu.cpp
  # the kernels pun types through pointers (as CUDA code does) and carry #pragma unroll
  GF="$CXXFLAGS -fno-strict-aliasing -Wno-unknown-pragmas -I$E -I$B -Iinclude -Isrc"
  g++ $GF -c -o $B/${K}_emu.o $B/${K}_emu.cpp
  g++ $GF -o $B/$T $E/$T.cpp $B/${K}_emu.o $B/emu_cuda.o -lm $LD
  for n in ${EMU_SMS:-7 1 3}; do
    echo "-- $n SMs"
    EMU_SMS=$n $B/$T "$@"
  done
  exit 0
fi
cp src/backend/cuda/cuda_sample.cu $B/cuda_sample_emu.cpp
g++ $CXXFLAGS -I$E -I$B -Iinclude -Isrc -c -o $B/emu_sample.o $E/emu_sample.cpp
gcc -std=c11 -O2 -g -Wall -Wextra -Wshadow -Werror -D_GNU_SOURCE -Iinclude -Isrc -Itests/ops \
  -o $B/test_sample_emu $E/test_sample_emu.c src/engine/sampler.c src/util/vmath.c \
  src/util/error.c $B/emu_cuda.o $B/emu_sample.o -lstdc++ -lm $LD
$B/test_sample_emu "$@"
