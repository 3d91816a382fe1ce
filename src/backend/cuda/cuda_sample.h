/* cuda_sample.h: the device sampler's entry points (cuda_sample.cu), shared by the backend (through
 * cuda_internal.h) and the kernels' CPU emulator (tests/ops/cuda_emu). Include after the CUDA
 * runtime (or emu_cuda.h) and backend/backend.h. */
#ifndef BRISK_CUDA_SAMPLE_H
#define BRISK_CUDA_SAMPLE_H

/* end_step_sample's chain over n rows of logits [n, V], n <= cap. scratch: cu_sample_bytes(cap)
 * bytes, zeroed once when allocated (the kernels leave their arrival counters zero). It starts
 * with the inputs, [cap] cu_sample_in, which the caller writes before each launch (outside any
 * graph). The rows go to cu_chosen_dst, as cu_sample_out: id -1 for a row with NaN or +inf. */
typedef struct cu_sample_in {
    brisk_sample_params p;
    double u;
} cu_sample_in;
typedef struct cu_sample_out {
    int32_t id;
    float lp;
} cu_sample_out;
/* Where the last kernel of a choice (argmax or sampler) puts each row's result, so that
 * neither a copy to the host nor one into the next step's token slot sits between two steps:
 * tok[i] = id (the device's token slot of the next step; NULL: none) and host[*slot * cap + i] =
 * (id, lp) (mapped pinned memory the host reads once the step's event has completed; the slot
 * word is uploaded with the step's index arrays, so a captured graph serves either slot; NULL:
 * none). */
typedef struct cu_chosen_dst {
    int32_t *tok;
    cu_sample_out *host;
    const int32_t *slot;
    int cap;
} cu_chosen_dst;
size_t cu_sample_bytes(int cap);
/* dst: where the rows go (required). */
cudaError_t cu_sample(cudaStream_t st, const float *logits, int n, int V, void *scratch, int cap,
                      const cu_chosen_dst *dst);
/* Greedy token per row of logits [n, V] (one launch): the argmax (lowest index among ties; -1
 * when the row holds a NaN) and its log-probability, to dst (required). scratch:
 * cu_argmax_bytes(cap) bytes for n <= cap rows, zeroed once when allocated (the kernel leaves its
 * arrival counters zero). */
size_t cu_argmax_bytes(int cap);
cudaError_t cu_argmax(cudaStream_t st, const float *logits, int n, int V, void *scratch, int cap,
                      const cu_chosen_dst *dst);

#endif
