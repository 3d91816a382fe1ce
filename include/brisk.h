/* brisk.h: the one public header of the brisk inference engine.
 * Opaque handles, params structs with *_default_params(), brisk_status codes; every function
 * states ownership, thread-safety and the state after an error. Compiles as C11 and as C++. */
#ifndef BRISK_H
#define BRISK_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(BRISK_SHARED)
#define BRISK_API __declspec(dllexport)
#else
#define BRISK_API __attribute__((visibility("default")))
#endif

#define BRISK_API_VERSION 1

/* ---------------------------------------------------------------------------------------------
 * Status codes and errors
 * ------------------------------------------------------------------------------------------- */

typedef enum brisk_status {
    BRISK_OK = 0,
    BRISK_ERR_INVALID_ARG = -1,      /* caller passed a bad argument */
    BRISK_ERR_IO = -2,               /* a file could not be opened, read or mapped */
    BRISK_ERR_FORMAT = -3,           /* a file is malformed (bad header, JSON, offsets, shapes) */
    BRISK_ERR_UNSUPPORTED = -4,      /* well-formed but not supported (model_type, dtype, bits) */
    BRISK_ERR_OOM = -5,              /* an allocation failed */
    BRISK_ERR_BUFFER_TOO_SMALL = -6, /* output buffer too small; the needed size is reported */
    BRISK_ERR_KV_FULL = -7,          /* the KV block pool has no free block for this step */
    BRISK_ERR_BACKEND = -8,          /* a backend (driver, device) failed */
    BRISK_ERR_CANCELLED = -9,        /* the caller asked to stop */
    BRISK_ERR_NOT_FOUND = -10,       /* a named thing (tensor, file, token) does not exist */
} brisk_status;

/* The one-line message of the last failed call on this thread ("" when none). It starts with
 * the function name and says what was wrong and where. The string is owned by the library and
 * valid until the next failing call on the same thread. Thread-safe (thread-local). */
BRISK_API const char *brisk_last_error(void);

/* A short constant name for a status ("ok", "format error", ...). */
BRISK_API const char *brisk_status_str(brisk_status st);

/* The library version string, e.g. "0.1.0". */
BRISK_API const char *brisk_version(void);

/* Frees a buffer the library allocated and handed to the caller (rendered text, id arrays).
 * NULL is a no-op. */
BRISK_API void brisk_free(void *p);

/* ---------------------------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------------------------- */

typedef struct brisk_model brisk_model;

typedef enum brisk_backend_kind {
    BRISK_BACKEND_AUTO = 0, /* CUDA when a usable GPU is present, else CPU */
    BRISK_BACKEND_CPU = 1,
    BRISK_BACKEND_CUDA = 2,
    BRISK_BACKEND_CPU_REF = 3, /* the scalar reference path (the oracle of every other path) */
} brisk_backend_kind;

typedef struct brisk_model_params {
    brisk_backend_kind backend;
    int n_threads; /* CPU worker threads; 0 = all cores */
} brisk_model_params;

BRISK_API brisk_model_params brisk_model_default_params(void);

/* Loads a model folder (config.json + *.safetensors [+ index]). The safetensors files are mmapped
 * read-only and validated in full before any tensor is used. On failure *out is NULL and
 * brisk_last_error() names the file, tensor and problem. The model is immutable after load and
 * may be shared by several contexts and threads. */
BRISK_API brisk_status brisk_model_load(const char *dir, const brisk_model_params *params,
                                        brisk_model **out);

/* Frees a model. All contexts created from it must be destroyed first. NULL is a no-op. */
BRISK_API void brisk_model_free(brisk_model *model);

typedef struct brisk_model_info {
    const char *model_type;   /* "llama", "mistral", "qwen2", "qwen3" (owned by the model) */
    int n_vocab;              /* rows of the output projection */
    int n_embd;               /* hidden size */
    int n_layer;              /* transformer blocks */
    int n_head;               /* query heads */
    int n_head_kv;            /* key/value heads */
    int head_dim;             /* per-head size */
    int n_ff;                 /* MLP intermediate size */
    int max_position;         /* max_position_embeddings */
    int bos_id;               /* -1 when none */
    int n_eos;                /* number of EOS ids in eos_ids */
    const int32_t *eos_ids;   /* owned by the model */
    bool tied_embeddings;     /* output projection = token embedding */
    uint64_t n_params;        /* parameters (quantized weights counted as their values) */
    uint64_t weight_bytes;    /* bytes of all weight tensors as stored */
    const char *backend_name; /* the backend the model runs on */
} brisk_model_info;

/* Fills *info from a loaded model. Pointers stay valid until brisk_model_free. */
BRISK_API void brisk_model_get_info(const brisk_model *model, brisk_model_info *info);

/* ---------------------------------------------------------------------------------------------
 * Contexts: KV cache + scratch for running the forward pass
 * ------------------------------------------------------------------------------------------- */

typedef struct brisk_context brisk_context;

typedef struct brisk_context_params {
    int n_ctx;       /* max tokens per sequence; 0 = the model's max_position_embeddings (capped) */
    int n_seq_max;   /* sequences that may be resident at once */
    int n_batch;     /* max tokens in one forward step (prefill chunk); 0 = n_ctx */
    int kv_block;    /* tokens per KV block (paged cache); 0 = 16 */
    int n_kv_blocks; /* blocks in the pool; 0 = enough for n_seq_max full sequences */
} brisk_context_params;

BRISK_API brisk_context_params brisk_context_default_params(void);

/* Creates a context: plans all scratch for the worst-case step and allocates the KV block pool.
 * Not thread-safe: one thread uses a context at a time. On failure *out is NULL. */
BRISK_API brisk_status brisk_context_create(brisk_model *model, const brisk_context_params *params,
                                            brisk_context **out);
BRISK_API void brisk_context_destroy(brisk_context *ctx);

/* Runs tokens through sequence `seq` (0 <= seq < n_seq_max), appending them after the tokens
 * the sequence already holds (prefill when it is empty, decode when n_tokens == 1). When
 * `logits` is not NULL it receives float32 logits of every position, row-major
 * [n_tokens, n_vocab]; with `last_only` only the last row is written ([1, n_vocab]).
 * Errors: BRISK_ERR_INVALID_ARG (token id out of range, sequence full), BRISK_ERR_KV_FULL (no
 * free block). After an error the sequence is unchanged. */
BRISK_API brisk_status brisk_context_eval(brisk_context *ctx, int seq, const int32_t *tokens,
                                          int n_tokens, float *logits, bool last_only);

/* Tokens held by sequence `seq` (its current length). */
BRISK_API int brisk_context_seq_len(const brisk_context *ctx, int seq);

/* Drops positions >= keep of sequence `seq` (keep = 0 clears it), returning its KV blocks to the
 * pool. */
BRISK_API brisk_status brisk_context_seq_truncate(brisk_context *ctx, int seq, int keep);

/* ---------------------------------------------------------------------------------------------
 * Tokenizer (tokenizer.json)
 * ------------------------------------------------------------------------------------------- */
/* BRISK-SECTION tokenizer: declarations are added here by src/tokenizer/. */

/* ---------------------------------------------------------------------------------------------
 * Chat templates (Jinja)
 * ------------------------------------------------------------------------------------------- */
/* BRISK-SECTION template: declarations are added here by src/template/. */
/* A compiled chat template: the Jinja source that wraps a conversation in a model's prompt
 * format, rendered byte for byte like transformers' apply_chat_template (Jinja with trim_blocks,
 * lstrip_blocks, loop controls, tojson(ensure_ascii=False), raise_exception, strftime_now).
 * Immutable after creation: one template may be rendered from many threads at once. */
typedef struct brisk_chat_template brisk_chat_template;

/* Compiles Jinja source (len bytes, need not be NUL-terminated). On a syntax error returns
 * BRISK_ERR_FORMAT with a message naming line:column and what was expected; templates nesting
 * deeper than the parser's limit give BRISK_ERR_UNSUPPORTED. On failure *out is NULL.
 * The template has no bos/eos tokens (pass them as vars). Free with brisk_chat_template_free. */
BRISK_API brisk_status brisk_chat_template_create(const char *source, size_t len,
                                                  brisk_chat_template **out);

/* Loads the chat template of a model folder, the way transformers finds it: chat_template.jinja,
 * else chat_template.json, else tokenizer_config.json "chat_template" (a string, or a list of
 * {"name", "template"} from which `name` or, when NULL, "default" is taken). A non-default name
 * may also be additional_chat_templates/<name>.jinja. Remembers bos_token and eos_token from
 * tokenizer_config.json (string or {"content": ...}). BRISK_ERR_NOT_FOUND when there is no
 * template; other errors as brisk_chat_template_create. On failure *out is NULL. */
BRISK_API brisk_status brisk_chat_template_load(const char *model_dir, const char *name,
                                                brisk_chat_template **out);

/* Compiles the template in the file `path`, taking bos/eos tokens from
 * model_dir/tokenizer_config.json when model_dir is not NULL.
 * Errors as brisk_chat_template_load. */
BRISK_API brisk_status brisk_chat_template_load_file(const char *path, const char *model_dir,
                                                     brisk_chat_template **out);

/* Frees a template. NULL is a no-op. */
BRISK_API void brisk_chat_template_free(brisk_chat_template *tmpl);

/* The bos/eos token strings loaded with the template, or NULL (owned by the template). */
BRISK_API const char *brisk_chat_template_bos(const brisk_chat_template *tmpl);
BRISK_API const char *brisk_chat_template_eos(const brisk_chat_template *tmpl);

/* Renders a conversation. messages_json: a JSON array of message objects ({"role", "content",
 * optional "tool_calls", any other fields}); as in apply_chat_template, keys whose value is null
 * are dropped and reasoning ("reasoning_content"/"thinking"/"reasoning") is mirrored under
 * "thinking" and "reasoning_content". vars_json (NULL = none): a JSON object of further template
 * variables (tools, documents, date_string, enable_thinking, ...); they override the defaults
 * (tools = documents = none, bos_token/eos_token from the folder). Both strings are
 * NUL-terminated. On success *out_text is a NUL-terminated malloc'd string (free with
 * brisk_free) and *out_len (when not NULL) its byte length.
 * Errors (*out_text NULL, template unchanged): BRISK_ERR_INVALID_ARG for bad JSON, a runtime
 * error of the template (undefined attribute, type error) or the template's own
 * raise_exception(msg) — then brisk_last_error() is "brisk_chat_template_render:
 * raise_exception: <msg>"; BRISK_ERR_UNSUPPORTED when a limit is hit (output size, steps,
 * recursion depth) or a Jinja feature is not supported. Thread-safe.
 * strftime_now() uses the local clock, or the UTC instant in env BRISK_TEMPLATE_NOW (Unix
 * seconds; meant for tests). */
BRISK_API brisk_status brisk_chat_template_render(const brisk_chat_template *tmpl,
                                                  const char *messages_json, const char *vars_json,
                                                  bool add_generation_prompt, char **out_text,
                                                  size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif /* BRISK_H */
