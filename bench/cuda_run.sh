#!/bin/bash
# bench/cuda_run.sh: one device call: build for sm_90a, GPU parity tests, compute-sanitizer on the
# tiny models, the CUDA benchmarks (batch 1 and batched decode), ncu of one decode layer. Logs go
# to $OUT; a short table is printed last. Knobs:
#   FAST=1 skips sanitizers and bf16; MEMCHECK=1 with FAST=1 still runs memcheck and racecheck;
#   BF16=1 with FAST=1 still times the bf16 reference; RACECHECK_STORIES=1: racecheck of stories;
#   RACECHECK_PIPE=1: racecheck of a pipelined stories decode beside --no-pipeline (and OLD's);
#   RCDIAG=1: peak host memory of pipelined decodes under racecheck, by length;
#   NOATTNSAN=1 leaves out the sanitizers of the attention tests; ATTNSAN=1 (with FAST=1): those of
#   test_attn_cuda only (ATTNSAN_T: seconds each); MEMCHECK_GEN=1 adds memcheck of test_generate
#   and test_sample_cuda;
#   QUICK=1 runs only the ops, goldens and stories tests (ATTN=1: the decode attention's too);
#   NCU=0 skips ncu;
#   AB="ENV=v ..." also times 8B and 1B under each assignment (A=1+B=2: both at once);
#   BATCHES="8 32 64"; BAB="ENV=v ..." (batched decode under each assignment too);
#   TL=1 (the kernel timeline of a one-token step, 8B and 1B; TLAB="ENV=v ..." under each too);
#   TESTAB="ENV=v ..." (goldens and stories under each assignment too);
#   SKIPS="stage ..." (in-graph stage costs); READBW=1; SAMPLE=1 (decode with top-p);
#   STEPGAP=1 (bench/stepgap.cu: the card's cost of the copies between two steps);
#   L2HOT=1 (bench/l2hot.cu: every block reading the same x from L2, against replicas);
#   NOPIPE=1 (8B and 1B with --no-pipeline too: each step waited for);
#   SAMPLE_DIAG=1 (the sampler test without PDL); NCU_V4=1 with NCU_K=kernel and NCU_ENV=A=1
#   (stall reasons of one layer's GEMVs); NCU_B=64 (kernel times of a batched step);
#   OLD=dir: a second source tree (bench/devcopy.sh OLD=rev puts one at old/), its brisk timed
#   on 8B and 1B (and each of BATCHES) beside the first (A/B of code that no env switch selects, on the same card).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
FULL=$OUT; OUT=/tmp/logs; mkdir -p $OUT  # only a few files come back: see the end
export PATH=$PATH:/usr/local/cuda/bin
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $OUT/card.txt
sed -i "s|^prefix=.*|prefix=$PWD/deps|" deps/lib/pkgconfig/*.pc
export PKG_CONFIG_PATH=$PWD/deps/lib/pkgconfig LD_LIBRARY_PATH=$PWD/deps/lib:${LD_LIBRARY_PATH:-}
cmake -S . -B build -DBRISK_SHARED=$PWD/shared -DCMAKE_CUDA_ARCHITECTURES=90a-real -DBRISK_WERROR=OFF > $OUT/cmake.log 2>&1 || { tail -20 $OUT/cmake.log; exit 1; }
cmake --build build -j16 > $OUT/build.log 2>&1 || { grep -E "error" $OUT/build.log | head -30; exit 1; }
if [ -n "${OLD:-}" ]; then
  cmake -S $OLD -B build_old -DBRISK_SHARED=$PWD/shared -DCMAKE_CUDA_ARCHITECTURES=90a-real -DBRISK_WERROR=OFF > $OUT/cmake_old.log 2>&1 &&
    cmake --build build_old -j16 --target brisk-cli > $OUT/build_old.log 2>&1 || { tail -20 $OUT/build_old.log; exit 1; }
fi
cd build
S=$FULL/summary.txt # in $OUT itself: what finished comes back even when the call times out
timeout 120 ./tests/test_ops_cuda > $OUT/ops.log 2>&1; echo "ops rc=$?" | tee -a $S
[ -n "${QUICK:-}" ] || {
timeout 120 ./tests/test_attn_cuda > $OUT/attn.log 2>&1; echo "attn rc=$? $(tail -1 $OUT/attn.log)" | tee -a $S
BRISK_CUDA_ATTN=counter timeout 120 ./tests/test_attn_cuda > $OUT/attn_counter.log 2>&1; echo "attn (counter merge) rc=$? $(tail -1 $OUT/attn_counter.log)" | tee -a $S
BRISK_CUDA_ATTN_TC=0 timeout 120 ./tests/test_attn_cuda > $OUT/attn_fma.log 2>&1; echo "attn (FMA tiles) rc=$? $(tail -1 $OUT/attn_fma.log)" | tee -a $S
# one-token matmuls on the v4 kernel too (v7 is the default for them)
BRISK_CUDA_GEMV=4 timeout 120 ./tests/test_ops_cuda > $OUT/ops_v4.log 2>&1; echo "ops (v4 GEMV) rc=$?" | tee -a $S
BRISK_CUDA_BATCH=0 timeout 120 ./tests/test_ops_cuda > $OUT/ops_nobatch.log 2>&1; echo "ops (batches on v4) rc=$?" | tee -a $S
BRISK_CUDA_V8_ONE=1 timeout 120 ./tests/test_ops_cuda > $OUT/ops_v8one.log 2>&1; echo "ops (one-token steps on v8) rc=$?" | tee -a $S
[ -x ./tests/test_sample_cuda ] && { timeout 200 ./tests/test_sample_cuda > $OUT/sample.log 2>&1; echo "sample rc=$? $(tail -1 $OUT/sample.log)" | tee -a $S; }
if [ -n "${SAMPLE_DIAG:-}" ]; then # is a failure of the sampler test about PDL overlap or inside a kernel?
  BRISK_CUDA_PDL=0 timeout 200 ./tests/test_sample_cuda > $OUT/sample_nopdl.log 2>&1; echo "sample (PDL off) rc=$? $(tail -1 $OUT/sample_nopdl.log)" | tee -a $S
  CUDA_LAUNCH_BLOCKING=1 timeout 200 ./tests/test_sample_cuda > $OUT/sample_block.log 2>&1; echo "sample (launch blocking) rc=$? $(tail -1 $OUT/sample_block.log)" | tee -a $S
fi
timeout 120 ./tests/test_fattn_cuda > $OUT/fattn.log 2>&1; echo "fattn rc=$? $(tail -1 $OUT/fattn.log)" | tee -a $S
}
if [ -n "${QUICK:-}" ] && [ -n "${ATTN:-}" ]; then # QUICK=1 ATTN=1: the decode attention's tests too
  timeout 120 ./tests/test_attn_cuda > $OUT/attn.log 2>&1; echo "attn rc=$? $(tail -1 $OUT/attn.log)" | tee -a $S
  BRISK_CUDA_ATTN=counter timeout 120 ./tests/test_attn_cuda > $OUT/attn_counter.log 2>&1; echo "attn (counter merge) rc=$? $(tail -1 $OUT/attn_counter.log)" | tee -a $S
  BRISK_CUDA_ATTN_SLICE=0 timeout 120 ./tests/test_attn_cuda > $OUT/attn_block0.log 2>&1; echo "attn (cluster merge in block 0) rc=$? $(tail -1 $OUT/attn_block0.log)" | tee -a $S
  timeout 60 ./tests/test_batch ../shared cuda > $OUT/batch.log 2>&1; echo "batch rc=$? $(tail -1 $OUT/batch.log)" | tee -a $S
fi
timeout 60 ./tests/test_goldens ../tests/golden cuda > $OUT/goldens.log 2>&1; echo "goldens rc=$? $(tail -1 $OUT/goldens.log)" | tee -a $S
timeout 60 ./tests/test_stories ../shared cuda > $OUT/stories.log 2>&1; echo "stories rc=$? $(tail -1 $OUT/stories.log)" | tee -a $S
timeout 60 ./tests/test_generate ../shared > $OUT/generate.log 2>&1; echo "generate rc=$? $(tail -1 $OUT/generate.log)" | tee -a $S
for v in ${TESTAB:-}; do # TESTAB="ENV=v ...": goldens and stories under each assignment too
  env ${v//+/ } timeout 60 ./tests/test_goldens ../tests/golden cuda > $OUT/goldens_$v.log 2>&1; echo "goldens ($v) rc=$? $(tail -1 $OUT/goldens_$v.log)" | tee -a $S
  env ${v//+/ } timeout 60 ./tests/test_stories ../shared cuda > $OUT/stories_$v.log 2>&1; echo "stories ($v) rc=$? $(tail -1 $OUT/stories_$v.log)" | tee -a $S
done
[ -n "${QUICK:-}" ] || { timeout 60 ./tests/test_batch ../shared cuda > $OUT/batch.log 2>&1; echo "batch rc=$? $(tail -1 $OUT/batch.log)" | tee -a $S; }
[ -n "${QUICK:-}" ] || for d in 0 1; do # the one-token GEMV's tile groups round-robin, and all drawn (default: SwiGLU's drawn)
  BRISK_CUDA_V7_DYN=$d timeout 60 ./tests/test_stories ../shared cuda > $OUT/stories_dyn$d.log 2>&1; echo "stories (BRISK_CUDA_V7_DYN=$d) rc=$? $(tail -1 $OUT/stories_dyn$d.log)" | tee -a $S; done
b() { # name, env, args...
  local n=$1 e=$2; shift 2
  local bin=./brisk; [ "${n#old_}" != "$n" ] && bin=../build_old/brisk
  env ${e//+/ } timeout 150 $bin bench --backend cuda "$@" > $OUT/b_$n.log 2>&1
  echo "== $n ($e $*) rc=$? :: $(grep -E 'prompt|generation|bandwidth|cuda trace' $OUT/b_$n.log | sed -E 's/ +/ /g' | tr '\n' ' ')" >> $S
}
[ -n "${NOB1:-}" ] || { # NOB1=1: no batch-1 benches (batched questions only)
b 8b_q4 X=1 --shape llama3-8b --quant q4g64 -p 512 -n 128 -r 3
b 1b_q4 X=1 --shape llama3.2-1b --quant q4g64 -p 512 -n 128 -r 3
}
if [ -n "${NOPIPE:-}" ] && [ -z "${NOB1:-}" ]; then # NOPIPE=1: the same steps, each waited for
  b 8b_q4_nopipe X=1 --shape llama3-8b --quant q4g64 -p 512 -n 128 -r 3 --no-pipeline
  b 1b_q4_nopipe X=1 --shape llama3.2-1b --quant q4g64 -p 512 -n 128 -r 3 --no-pipeline
fi
if [ -n "${OLD:-}" ] && [ -z "${NOB1:-}" ]; then for v in X=1 ${OLDAB:-}; do
  b old_8b_q4_$v $v --shape llama3-8b --quant q4g64 -p 512 -n 128 -r 3
  b old_1b_q4_$v $v --shape llama3.2-1b --quant q4g64 -p 512 -n 128 -r 3
done; fi
for v in ${AB:-}; do # A/B variants: env assignments, e.g. AB="BRISK_CUDA_GEMV=4 BRISK_CUDA_ATTN=counter"
  b 8b_q4_$v $v --shape llama3-8b --quant q4g64 -p 512 -n 128 -r 3
  b 1b_q4_$v $v --shape llama3.2-1b --quant q4g64 -p 512 -n 128 -r 3
done
if [ -n "${TL:-}" ]; then # the timeline of one one-token step's kernels (BRISK_CUDA_TL, stderr at exit)
  for m in llama3-8b llama3.2-1b; do for v in X=1 ${TLAB:-}; do
    env ${v//+/ } BRISK_CUDA_TL=1 timeout 100 ./brisk bench --backend cuda --shape $m --quant q4g64 -p 512 -n 16 -r 1 > $OUT/tl_${m}_$v.log 2>&1
    echo "== timeline $m ($v) rc=$?" >> $S; grep -A20 "cuda timeline" $OUT/tl_${m}_$v.log >> $S
  done; done
fi
for v in ${SKIPS:-}; do # in-graph cost of a stage: decode with its records dropped (garbage out)
  b 8b_skip_$v BRISK_CUDA_SKIP=$v --shape llama3-8b --quant q4g64 -p 16 -n 128 -r 2
  b 1b_skip_$v BRISK_CUDA_SKIP=$v --shape llama3.2-1b --quant q4g64 -p 16 -n 128 -r 2
done
if [ -n "${STEPGAP:-}" ]; then # what copies between two steps cost on the card (bench/stepgap.cu)
  nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -o $OUT/stepgap ../bench/stepgap.cu && timeout 60 $OUT/stepgap > $OUT/stepgap.log 2>&1
  cat $OUT/stepgap.log >> $S
fi
if [ -n "${L2HOT:-}" ]; then # does every block reading one x from L2 cost (bench/l2hot.cu)
  nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -o $OUT/l2hot ../bench/l2hot.cu && timeout 60 $OUT/l2hot > $OUT/l2hot.log 2>&1
  cat $OUT/l2hot.log >> $S
fi
if [ -n "${READBW:-}" ]; then
  nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -o $OUT/readbw ../bench/readbw.cu && timeout 120 $OUT/readbw > $OUT/readbw.log 2>&1
  cat $OUT/readbw.log; cp $OUT/readbw.log $FULL/
fi
if [ -n "${NCU_V4:-}" ]; then # stall reasons of the v4 GEMVs of one 8B decode layer (qkv, o, gate+up, down)
  env ${NCU_ENV:-X=1} timeout 200 ncu --clock-control none -k regex:${NCU_K:-k_gemv_mma} --launch-skip ${NCU_V4_SKIP:-400} --launch-count 4 --section WarpStateStats --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section SchedulerStats --section Occupancy --section SpeedOfLight --section LaunchStats ./brisk bench --shape llama3-8b --quant q4g64 --backend cuda -p 4 -n 40 -r 1 > $OUT/ncu_v4.log 2>&1
  cp $OUT/ncu_v4.log $FULL/
fi
if [ -n "${NCU_B:-}" ]; then # kernel time per name over ~one batched step (64 sequences), and the v8 GEMV's stalls
  timeout 200 ncu --metrics gpu__time_duration.sum --launch-skip ${NCU_B_SKIP:-700} --launch-count ${NCU_B_COUNT:-320} ./brisk bench --backend cuda --shape llama3-8b --quant q4g64 -p 0 -n 6 -b ${NCU_B:-64} --ctx 1024 -r 1 > $OUT/ncu_b.log 2>&1
  awk '/^  [a-zA-Z_]/ && /\(/ {k=$0; sub(/^ +/,"",k); sub(/\(.*/,"",k); gsub(/ /,"",k)} /gpu__time_duration/{u=$(NF-1); t=$NF; if (u ~ /^ms/) t*=1000; if (u ~ /^ns/) t/=1000; s[k]+=t; c[k]++} END {for (k in s) printf "%-40s %5d launches %10.1f us\n", k, c[k], s[k]}' $OUT/ncu_b.log | sort -k4 -n -r > $OUT/ncu_b_short.log
  cat $OUT/ncu_b_short.log; cp $OUT/ncu_b_short.log $FULL/
  timeout 200 ncu --clock-control none -k regex:k_gemv_batch --launch-skip 200 --launch-count 4 --section WarpStateStats --section SchedulerStats --section SpeedOfLight --section MemoryWorkloadAnalysis --section LaunchStats ./brisk bench --backend cuda --shape llama3-8b --quant q4g64 -p 0 -n 6 -b ${NCU_B:-64} --ctx 1024 -r 1 > $OUT/ncu_bk.log 2>&1
  cp $OUT/ncu_bk.log $FULL/
fi
for B in ${BATCHES:-8 32 64}; do # BAB="ENV=v ...": each batch size under each assignment too
  for v in X=1 ${BAB:-}; do b 8b_q4_b${B}_$v $v --shape llama3-8b --quant q4g64 -p 0 -n 32 -b $B --ctx 1024 -r 1; done
  [ -n "${OLD:-}" ] && b old_8b_q4_b${B} X=1 --shape llama3-8b --quant q4g64 -p 0 -n 32 -b $B --ctx 1024 -r 1
done
if [ -n "${SAMPLE:-}" ]; then # decode with the sampler chain on the device
  b 8b_q4_topp X=1 --shape llama3-8b --quant q4g64 -p 512 -n 128 -r 3 --temp 0.7 --top-p 0.9 --seed 1
  b 1b_q4_topp X=1 --shape llama3.2-1b --quant q4g64 -p 512 -n 128 -r 3 --temp 0.7 --top-p 0.9 --seed 1
fi
[ -n "${FAST:-}" ] && [ -n "${BF16:-}" ] && b 8b_bf16 X=1 --shape llama3-8b --quant bf16 -p 512 -n 64 -r 1
if [ -z "${FAST:-}" ]; then
  b 8b_bf16 X=1 --shape llama3-8b --quant bf16 -p 512 -n 64 -r 1
  timeout 150 compute-sanitizer --tool memcheck --leak-check no ./tests/test_stories ../shared cuda > $OUT/memcheck.log 2>&1; echo "memcheck rc=$? $(grep 'ERROR SUMMARY' $OUT/memcheck.log)" | tee -a $S
  timeout 100 compute-sanitizer --tool racecheck ./tests/test_goldens ../tests/golden cuda > $OUT/racecheck.log 2>&1; echo "racecheck rc=$? $(grep 'RACECHECK SUMMARY\|ERROR SUMMARY' $OUT/racecheck.log)" | tee -a $S
fi
if [ -n "${FAST:-}" ] && [ -n "${MEMCHECK:-}" ]; then
  timeout 150 compute-sanitizer --tool memcheck --leak-check no ./tests/test_stories ../shared cuda > $OUT/memcheck.log 2>&1; echo "memcheck rc=$? $(grep 'ERROR SUMMARY' $OUT/memcheck.log)" | tee -a $S
  timeout 100 compute-sanitizer --tool racecheck ./tests/test_goldens ../tests/golden cuda > $OUT/racecheck.log 2>&1; echo "racecheck rc=$? $(grep 'RACECHECK SUMMARY\|ERROR SUMMARY' $OUT/racecheck.log)" | tee -a $S
fi
if [ -n "${RACECHECK_STORIES:-}" ]; then # racecheck of the stories test (the choosing kernels' shared memory)
  timeout 240 compute-sanitizer --tool racecheck ./tests/test_stories ../shared cuda > $OUT/racecheck_stories.log 2>&1; echo "racecheck test_stories rc=$? $(grep 'RACECHECK SUMMARY\|ERROR SUMMARY' $OUT/racecheck_stories.log)" | tee -a $S
fi
if [ -n "${RACECHECK_PIPE:-}" ]; then # racecheck of a pipelined decode and of the same steps one at a time (with OLD=old: that tree's too).
  # Three steps (RC_N): racecheck's own host memory grows ~16 GB a pipelined step (17.6 GB at one,
  # 50.1 at three; flat one step at a time, 0.31 GB without the tool), so 12 steps are OOM-killed
  for bin in ./brisk ${OLD:+../build_old/brisk}; do for a in "" --no-pipeline; do
    l=$OUT/rc_pipe_$(echo $bin$a | tr -c 'a-z0-9\n' _).log
    timeout 90 compute-sanitizer --tool racecheck $bin bench --backend cuda --model ../shared/models/stories260K-mlx-4bit -p 4 -n ${RC_N:-3} -r 1 $a > $l 2>&1
    echo "racecheck bench ($bin $a) rc=$? $(grep -E 'generation|RACECHECK SUMMARY|Error' $l | tr '\n' ' ')" | tee -a $S; tail -5 $l >> $S
  done; done
fi
if [ -n "${RCDIAG:-}" ]; then # racecheck of a pipelined decode is OOM-killed (brisk exit 137, 130 GB): peak RSS by decode length, and without racecheck
  for a in "-n 12" "-n 12 --no-pipeline"; do
    echo "plain bench ($a): $(timeout 60 ./brisk bench --backend cuda --model ../shared/models/stories260K-mlx-4bit -p 4 -r 1 $a 2>&1 | grep -E 'memory' | tr '\n' ' ')" | tee -a $S
  done
  for n in 1 3; do for a in "" --no-pipeline; do
    l=$OUT/rcdiag_$n$a.log
    timeout 120 compute-sanitizer --tool racecheck --target-processes all sh -c "./brisk bench --backend cuda --model ../shared/models/stories260K-mlx-4bit -p 4 -n $n -r 1 $a; echo brisk exit \$?" > $l 2>&1
    echo "racecheck (-n $n $a) rc=$? $(grep -E 'memory|brisk exit|RACECHECK SUMMARY' $l | tr '\n' ' ')" | tee -a $S
  done; done
fi
if [ -n "${MEMCHECK_GEN:-}" ]; then # memcheck of the pipelined decodes of test_generate and of the sampler test
  timeout 150 compute-sanitizer --tool memcheck --leak-check no ./tests/test_generate ../shared > $OUT/memcheck_gen.log 2>&1; echo "memcheck test_generate rc=$? $(grep 'ERROR SUMMARY' $OUT/memcheck_gen.log)" | tee -a $S
  timeout 150 compute-sanitizer --tool memcheck --leak-check no ./tests/test_sample_cuda > $OUT/memcheck_sample.log 2>&1; echo "memcheck test_sample_cuda rc=$? $(grep 'ERROR SUMMARY' $OUT/memcheck_sample.log)" | tee -a $S
fi
attnsan() { # test, seconds each: memcheck and racecheck of one attention test
  timeout $2 compute-sanitizer --tool memcheck --leak-check no ./tests/$1 > $OUT/memcheck_$1.log 2>&1; echo "memcheck $1 rc=$? $(grep 'ERROR SUMMARY' $OUT/memcheck_$1.log)" | tee -a $S
  timeout $2 compute-sanitizer --tool racecheck ./tests/$1 > $OUT/racecheck_$1.log 2>&1; echo "racecheck $1 rc=$? $(grep 'RACECHECK SUMMARY\|ERROR SUMMARY' $OUT/racecheck_$1.log)" | tee -a $S
}
[ -n "${ATTNSAN:-}" ] && attnsan test_attn_cuda ${ATTNSAN_T:-200} # the decode attention's test alone
if [ -z "${NOATTNSAN:-}" ] && { [ -z "${FAST:-}" ] || [ -n "${MEMCHECK:-}" ]; }; then
  for t in test_attn_cuda test_fattn_cuda; do attnsan $t 200; done
fi
if [ "${NCU:-1}" != 0 ]; then
  timeout 150 ncu --launch-skip ${NCU_SKIP:-1500} --launch-count 24 --metrics gpu__time_duration.sum,dram__bytes_read.sum,launch__registers_per_thread ./brisk bench --shape llama3-8b --quant q4g64 --backend cuda -p 4 -n 40 -r 1 > $OUT/ncu8b.log 2>&1
  awk '/^  [a-zA-Z_]/ && /\(/ {k=$1; sub(/\(.*/,"",k); sub(/<.*/,"",k)} /gpu__time_duration/{t=$NF} /dram__bytes_read/{d=$(NF-1)" "$NF} /registers_per_thread/{print k, t" us", d, $NF" regs"}' $OUT/ncu8b.log > $OUT/ncu8b_short.log
fi
echo; grep -v "rel L2 [0-9.]*e-0[5-9]\|rel L2 0.00e+00" $OUT/ops.log | grep -v "^q\|^bf16\|^f16\|^f32" | head -45; cat $OUT/ncu8b_short.log 2>/dev/null; cat $S
cp $OUT/sample.log $OUT/attn.log $OUT/fattn.log $OUT/ops.log $OUT/ncu8b_short.log $OUT/goldens.log $OUT/stories.log $FULL/ 2>/dev/null; tar czf $FULL/logs.tgz -C $OUT . 2>/dev/null
