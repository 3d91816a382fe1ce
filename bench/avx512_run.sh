#!/bin/bash
# bench/avx512_run.sh: one device call on an AVX-512 CPU (F/BW/VL/VNNI): CPU-only build, the op
# tests (every ISA, avx512 against ops_ref and against avx2), then decode on the synthetic
# llama3.2-1b q4g64 with BRISK_CPU_ISA=avx2 and =avx512 at 2 and 8 threads (REPS=n alternates them n times). Logs go
# to $OUT; a short summary is printed last. Run from the repository root; ~1-2 min on 16 cores.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
sed -i "s|^prefix=.*|prefix=$PWD/deps|" deps/lib/pkgconfig/*.pc
export PKG_CONFIG_PATH=$PWD/deps/lib/pkgconfig LD_LIBRARY_PATH=$PWD/deps/lib:${LD_LIBRARY_PATH:-}
B=${BUILD:-build}
S=$OUT/summary.txt; : > $S
grep -m1 "model name" /proc/cpuinfo | tee -a $S
echo "flags: $(grep -m1 -o -w 'avx512f\|avx512bw\|avx512vl\|avx512_vnni' /proc/cpuinfo | sort -u | tr '\n' ' ')" | tee -a $S
cmake -S . -B $B -DBRISK_SHARED=$PWD/shared -DBRISK_CUDA=OFF -DBRISK_WERROR=OFF \
  -DCMAKE_BUILD_TYPE=Release > $OUT/cmake.log 2>&1 || { tail -20 $OUT/cmake.log; exit 1; }
cmake --build $B -j$(nproc) --target test_ops brisk-cli > $OUT/build.log 2>&1 ||
  { grep -E "error" $OUT/build.log | head -30; exit 1; }
grep -E "warning" $OUT/build.log | head -5
timeout 120 ./$B/tests/test_ops > $OUT/ops.log 2>&1; rc=$?
{ echo "test_ops rc=$rc"; grep -E "^(seed|ISAs|avx512|avx2|generic)" $OUT/ops.log;
  tail -1 $OUT/ops.log; grep "CHECK failed" $OUT/ops.log | head -15; } | tee -a $S
for th in 2 8; do
  for r in $(seq ${REPS:-1}); do
    for isa in avx2 avx512; do
      L=$OUT/bench_${isa}_t${th}_$r.log
      BRISK_CPU_ISA=$isa timeout 60 ./$B/brisk bench --shape llama3.2-1b --quant q4g64 \
        --threads $th -p 0 -n 32 -r 2 > $L 2>&1; rc=$?
      [ $rc = 0 ] && msg=$(grep -E '^(generation|bandwidth)' $L | sed 's/  */ /g' | tr '\n' ' ') ||
        msg=$(tail -2 $L | tr '\n' ' ')
      echo "$isa threads $th rc=$rc: $msg" | tee -a $S
    done
  done
done
