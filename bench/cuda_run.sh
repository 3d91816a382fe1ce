#!/bin/bash
# bench/cuda_run.sh: one device call: build for sm_90a, GPU parity tests, compute-sanitizer on the
# tiny models, the CUDA benchmarks. Logs go to $OUT; a short table is printed last.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $OUT/card.txt
sed -i "s|^prefix=.*|prefix=$PWD/deps|" deps/lib/pkgconfig/*.pc
export PKG_CONFIG_PATH=$PWD/deps/lib/pkgconfig LD_LIBRARY_PATH=$PWD/deps/lib:${LD_LIBRARY_PATH:-}
cmake -S . -B build -DBRISK_SHARED=$PWD/shared -DCMAKE_CUDA_ARCHITECTURES=90a-real -DBRISK_WERROR=OFF > $OUT/cmake.log 2>&1 || { tail -20 $OUT/cmake.log; exit 1; }
cmake --build build -j16 > $OUT/build.log 2>&1 || { grep -E "error" $OUT/build.log | head -30; exit 1; }
cd build
timeout 120 ./tests/test_ops_cuda > $OUT/ops.log 2>&1; echo "ops rc=$?" | tee -a $OUT/summary.txt
timeout 60 ./tests/test_goldens ../tests/golden cuda > $OUT/goldens.log 2>&1; echo "goldens rc=$?" | tee -a $OUT/summary.txt
timeout 60 ./tests/test_stories ../shared cuda > $OUT/stories.log 2>&1; echo "stories rc=$?" | tee -a $OUT/summary.txt
timeout 60 ./tests/test_stories ../shared > $OUT/stories_ref.log 2>&1; echo "stories(ref+auto) rc=$?" | tee -a $OUT/summary.txt
for m in llama3-8b:q4g64 llama3.2-1b:q4g64; do
  s=${m%%:*}; q=${m##*:}
  timeout 150 ./brisk bench --shape $s --quant $q --backend cuda -p 512 -n 128 -r 3 > $OUT/bench_${s}_${q}.log 2>&1
  echo "== $s $q rc=$?" >> $OUT/summary.txt; cat $OUT/bench_${s}_${q}.log >> $OUT/summary.txt
done
if [ -z "${FAST:-}" ]; then
timeout 150 compute-sanitizer --tool memcheck --leak-check no ./tests/test_stories ../shared cuda > $OUT/memcheck.log 2>&1; echo "memcheck rc=$? $(grep 'ERROR SUMMARY' $OUT/memcheck.log)" | tee -a $OUT/summary.txt
timeout 100 compute-sanitizer --tool racecheck ./tests/test_goldens ../tests/golden cuda > $OUT/racecheck.log 2>&1; echo "racecheck rc=$? $(grep 'RACECHECK SUMMARY\|ERROR SUMMARY' $OUT/racecheck.log)" | tee -a $OUT/summary.txt
timeout 120 ./brisk bench --shape llama3-8b --quant bf16 --backend cuda -p 512 -n 64 -r 1 > $OUT/bench_llama3-8b_bf16.log 2>&1
echo "== llama3-8b bf16 rc=$?" >> $OUT/summary.txt; cat $OUT/bench_llama3-8b_bf16.log >> $OUT/summary.txt
fi
export PATH=$PATH:/usr/local/cuda/bin
timeout 150 ncu --launch-skip 1500 --launch-count 24 --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum ./brisk bench --shape llama3-8b --quant q4g64 --backend cuda -p 16 -n 40 -r 1 > $OUT/ncu8b.log 2>&1
grep -E "^  k_|^  [a-z_]+<|gpu__time|dram__bytes" $OUT/ncu8b.log | sed 's/(int, int, int)//' | head -100 > $OUT/ncu8b_short.log
echo; grep -v "rel L2 [0-9.]*e-0[5-9]\|rel L2 0.00e+00" $OUT/ops.log | head -30; cat $OUT/ncu8b_short.log | paste - - - - | awk '{print $1, $(NF-8), $(NF-4), $NF}' | head -30; tail -22 $OUT/goldens.log; tail -16 $OUT/stories.log; cat $OUT/summary.txt
