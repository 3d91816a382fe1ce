#!/bin/bash
# tests/ops/cuda_emu/run.sh: the device sampling kernels (src/backend/cuda/cuda_sample.cu, copied
# unchanged) run on the CPU under emu_cuda.h against the host sampler, from the repository root:
# `bash tests/ops/cuda_emu/run.sh [quick]` (quick: ~2 minutes, else ~20), EMU_SEED=n for another
# order of the threads. It aborts, naming the line, at a barrier or warp intrinsic that not every
# thread of the block / lane of the warp reaches together. Shared memory and the row state are
# random bytes at each block / call (a read of what was not written shows). EMU_LAG=bytes: the
# last bytes of the logits change during the chain, as an upload that races the op delivers them
# (the kernels then fail: wrong ids, other bits on a rerun, or a crash). x86-64 only; no GPU.
set -e
B=build-emu; mkdir -p $B
E=tests/ops/cuda_emu
cp src/backend/cuda/cuda_sample.cu $B/cuda_sample_emu.cpp
CXXFLAGS="-std=c++17 -O2 -g -Wall -Wextra -Werror -Wno-unused-function -ffp-contract=off"
g++ $CXXFLAGS -I$E -Iinclude -Isrc -c -o $B/emu_cuda.o $E/emu_cuda.cpp
g++ $CXXFLAGS -I$E -I$B -Iinclude -Isrc -c -o $B/emu_sample.o $E/emu_sample.cpp
gcc -std=c11 -O2 -g -Wall -Wextra -Wshadow -Werror -D_GNU_SOURCE -Iinclude -Isrc -Itests/ops \
  -o $B/test_sample_emu $E/test_sample_emu.c src/engine/sampler.c src/util/vmath.c \
  src/util/error.c $B/emu_cuda.o $B/emu_sample.o -lstdc++ -lm
$B/test_sample_emu "$@"
