/* model.c: brisk_model_load/free/get_info: config + validated safetensors + bound weights.
 * Loading maps the files and checks everything; no weight byte is copied on the CPU path. */
#include "model/model.h"
#include "util/error.h"
#include "util/fsutil.h"

#include <stdlib.h>
#include <string.h>

brisk_model_params brisk_model_default_params(void) {
    brisk_model_params p = {.backend = BRISK_BACKEND_AUTO, .n_threads = 0};
    return p;
}

brisk_status brisk_model_load(const char *dir, const brisk_model_params *params,
                              brisk_model **out) {
    if (!out) return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_model_load: out is NULL");
    *out = NULL;
    if (!dir) return brisk_errorf(BRISK_ERR_INVALID_ARG, "brisk_model_load: dir is NULL");
    if (!brisk_is_dir(dir))
        return brisk_errorf(BRISK_ERR_NOT_FOUND, "brisk_model_load: %s: not a folder", dir);
    brisk_model_params p = params ? *params : brisk_model_default_params();
    if (p.backend == BRISK_BACKEND_CUDA && !brisk_backend_cuda_available())
        return brisk_errorf(BRISK_ERR_UNSUPPORTED, "brisk_model_load: CUDA backend: %s",
                            brisk_backend_cuda_unavailable());
    brisk_model *m = calloc(1, sizeof *m);
    if (!m) return brisk_errorf(BRISK_ERR_OOM, "brisk_model_load: out of memory");
    m->backend = p.backend;
    m->n_threads = p.n_threads;
    brisk_status st = brisk_config_load(dir, &m->cfg);
    if (st != BRISK_OK) {
        free(m);
        return st;
    }
    if ((st = brisk_st_open_dir(dir, &m->st)) == BRISK_OK)
        st = brisk_weights_bind(&m->cfg, m->st, &m->w);
    if (st != BRISK_OK) {
        brisk_model_free(m);
        return st;
    }
    *out = m;
    return BRISK_OK;
}

void brisk_model_free(brisk_model *m) {
    if (!m) return;
    brisk_weights_free(&m->w);
    brisk_st_close(m->st);
    free(m->synthetic);
    brisk_config_free(&m->cfg);
    free(m);
}

void brisk_model_get_info(const brisk_model *m, brisk_model_info *info) {
    const brisk_config *c = &m->cfg;
    memset(info, 0, sizeof *info);
    info->model_type = c->arch->model_type;
    info->n_vocab = c->n_vocab;
    info->n_embd = c->n_embd;
    info->n_layer = c->n_layer;
    info->n_head = c->n_head;
    info->n_head_kv = c->n_head_kv;
    info->head_dim = c->head_dim;
    info->n_ff = c->n_ff;
    info->max_position = c->max_position;
    info->bos_id = c->bos_id;
    info->n_eos = c->n_eos;
    info->eos_ids = c->eos_ids;
    info->tied_embeddings = m->w.tied;
    info->n_params = m->w.n_params;
    info->weight_bytes = m->w.bytes;
    info->decode_bytes = m->w.bytes - (m->w.tied ? 0 : brisk_tensor_bytes(&m->w.tok_embd));
    info->backend_name = m->backend == BRISK_BACKEND_CUDA   ? "cuda"
                         : m->backend == BRISK_BACKEND_AUTO ? "auto"
                                                            : "cpu";
}
