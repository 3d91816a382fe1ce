/* cuda_sample.h: the device sampler's entry points (cuda_sample.cu), shared by the backend (through
 * cuda_internal.h) and the kernels' CPU emulator (tests/ops/cuda_emu). Include after the CUDA
 * runtime (or emu_cuda.h) and backend/backend.h. */
#ifndef BRISK_CUDA_SAMPLE_H
#define BRISK_CUDA_SAMPLE_H

/* end_step_sample's chain over n rows of logits [n, V], n <= cap. scratch: cu_sample_bytes(cap)
 * bytes, zeroed once when allocated (the kernels leave their arrival counters zero). It starts
 * with the inputs, [cap] cu_sample_in, which the caller writes before each launch (outside any
 * graph), and holds the outputs at cu_sample_out_offset(cap): [cap] cu_sample_out, id -1 for a row
 * with NaN or +inf. */
typedef struct cu_sample_in {
    brisk_sample_params p;
    double u;
} cu_sample_in;
typedef struct cu_sample_out {
    int32_t id;
    float lp;
} cu_sample_out;
size_t cu_sample_bytes(int cap);
size_t cu_sample_out_offset(int cap);
cudaError_t cu_sample(cudaStream_t st, const float *logits, int n, int V, void *scratch, int cap);

#endif
