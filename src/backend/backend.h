/* backend.h: the backend vtable. A backend implements the engine's ~15 ops over its own memory;
 * model/forward.c composes them into the one forward pass. Never includes model or tokenizer code. */
#ifndef BRISK_BACKEND_H
#define BRISK_BACKEND_H

typedef struct brisk_backend_ops brisk_backend_ops;

/* The CUDA backend's op table, or NULL when brisk was built without CUDA or no GPU is usable. */
const brisk_backend_ops *brisk_backend_cuda(void);
/* Why brisk_backend_cuda() returned NULL (one line). */
const char *brisk_backend_cuda_unavailable(void);

#endif
