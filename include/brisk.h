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

/* Creates a model of a named real shape with random weights made in memory, for benchmarks:
 * shape is one of brisk_synthetic_shapes() ("llama3.2-1b", "llama3-8b", "qwen3-4b", ...); quant
 * is "f32", "f16", "bf16" or "q<bits>g<group>" (MLX affine, e.g. "q4g64", "q8g32"). Embeddings
 * and the output projection use the same format, as mlx_lm.convert writes them. */
BRISK_API brisk_status brisk_model_create_synthetic(const char *shape, const char *quant,
                                                    const brisk_model_params *params,
                                                    brisk_model **out);
/* The shape names brisk_model_create_synthetic accepts, comma separated (static string). */
BRISK_API const char *brisk_synthetic_shapes(void);

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
    uint64_t decode_bytes;    /* weight bytes one decode step reads (all but the embedding
                                 table, which is read one row per token, unless it is tied) */
    const char *backend_name; /* the backend the model runs on */
} brisk_model_info;

/* Fills *info from a loaded model. Pointers stay valid until brisk_model_free. */
BRISK_API void brisk_model_get_info(const brisk_model *model, brisk_model_info *info);

/* ---------------------------------------------------------------------------------------------
 * Contexts: KV cache + scratch for running the forward pass
 * ------------------------------------------------------------------------------------------- */

typedef struct brisk_context brisk_context;
typedef struct brisk_sampler brisk_sampler; /* see Sampling below */

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

/* The functions below that take a brisk_context are not thread-safe: one thread uses a context
 * at a time (several contexts over one model may run on different threads).
 *
 * Runs tokens through sequence `seq` (0 <= seq < n_seq_max), appending them after the tokens
 * the sequence already holds (prefill when it is empty, decode when n_tokens == 1). When
 * `logits` is not NULL it receives float32 logits of every position, row-major
 * [n_tokens, n_vocab]; with `last_only` only the last row is written ([1, n_vocab]).
 * Errors: BRISK_ERR_INVALID_ARG (token id out of range, sequence full), BRISK_ERR_KV_FULL (no
 * free block). After an error the sequence is unchanged. */
BRISK_API brisk_status brisk_context_eval(brisk_context *ctx, int seq, const int32_t *tokens,
                                          int n_tokens, float *logits, bool last_only);

/* brisk_context_eval for greedy decoding: instead of logits it returns the next token of the
 * last position, *next = argmax of its logits (the lowest id among equal maxima, as the greedy
 * sampler) and, when logprob is not NULL, that token's log-probability at temperature 1. On a GPU
 * backend only these two values cross to the host. Errors as brisk_context_eval, and
 * BRISK_ERR_BACKEND when the logits hold NaN (the sequence then keeps the evaluated tokens). */
BRISK_API brisk_status brisk_context_eval_greedy(brisk_context *ctx, int seq, const int32_t *tokens,
                                                 int n_tokens, int32_t *next, float *logprob);

/* brisk_context_eval followed by brisk_sampler_sample on the last position's logits: *next is the
 * token sampler s picks (not accepted: call brisk_sampler_accept) and *logprob, when not NULL,
 * its log-probability as brisk_sampler_sample reports it. One call for every sampler: a greedy
 * one goes through brisk_context_eval_greedy; a chain of temperature, top-k, top-p and min-p only
 * (no logit bias, no penalties) runs on the backend when it can (CUDA: only the token and its
 * logprob cross to the host), drawing with the same uniform from s's generator, so a seed gives
 * the same tokens as on the CPU up to float rounding at the edges; anything else samples the
 * copied logits on the host. s must be for the model's vocabulary. Errors as brisk_context_eval,
 * and BRISK_ERR_BACKEND when the logits hold NaN (or, when drawing, +inf or only -inf); the
 * sequence then keeps the evaluated tokens and s's generator has not moved. */
BRISK_API brisk_status brisk_context_eval_sample(brisk_context *ctx, int seq, const int32_t *tokens,
                                                 int n_tokens, brisk_sampler *s, int32_t *next,
                                                 float *logprob);

/* Pipelined decoding of one sequence: each step is queued before the host has the token the step
 * before it picks, so on a GPU the host's work for a step, and the copy of the token back, hide
 * behind the card's work on the step before (brisk_generate decodes this way whenever the
 * sampler allows).
 *
 * brisk_context_decode_launch appends `*token` to sequence `seq` and queues the step that picks
 * the token after it with sampler s, which must be greedy or a chain of temperature, top-k,
 * top-p and min-p only (no logit bias, no penalties: those need each token before the next step
 * starts); a drawing chain takes its uniform from s's generator now. token NULL: the token the
 * newest uncollected launch of `seq` picks (it never crosses to the host first). At most two
 * launches are uncollected at a time, all of one sequence; meanwhile the context takes only
 * launches, collects and drops (other calls fail with BRISK_ERR_INVALID_ARG). The sequence holds
 * a launched token at once. On a backend without pipelined steps the step runs inside the call.
 * Errors as brisk_context_eval_sample; after an error nothing was queued, the sequence is
 * unchanged and s's generator has not moved. */
BRISK_API brisk_status brisk_context_decode_launch(brisk_context *ctx, int seq,
                                                   const int32_t *token, brisk_sampler *s);

/* Waits for the oldest uncollected launch: *next is the token it picked (not accepted: call
 * brisk_sampler_accept) and *logprob, when not NULL, its log-probability as
 * brisk_context_eval_sample reports it. BRISK_ERR_BACKEND when its logits held NaN (or, when
 * drawing, +inf or only -inf): that launch and every later one are then dropped. */
BRISK_API brisk_status brisk_context_decode_collect(brisk_context *ctx, int32_t *next,
                                                    float *logprob);

/* Waits for every uncollected launch and drops it: the sequence ends before the first one's
 * token (a stop seen one step late leaves nothing behind). No-op when none is uncollected. */
BRISK_API void brisk_context_decode_drop(brisk_context *ctx);

/* One decode step for several sequences at once (continuous batching): tokens[i] is appended to
 * sequence seqs[i] (all distinct), all in one forward pass; when logits is not NULL it receives
 * each sequence's next-token logits, row i for seqs[i], [n, n_vocab]. n <= n_batch.
 * Errors as brisk_context_eval; after an error no sequence has changed. */
BRISK_API brisk_status brisk_context_decode_batch(brisk_context *ctx, const int *seqs,
                                                  const int32_t *tokens, int n, float *logits);

/* brisk_context_decode_batch that returns each sequence's next token instead of its logits, as a
 * server steps its requests: next[i] is the token samplers[i] picks for seqs[i] (not accepted:
 * call brisk_sampler_accept) and logprob[i], when logprob is not NULL, its log-probability as
 * brisk_sampler_sample reports it; next may be tokens itself (each step feeds the next). Each row
 * has its own sampler (one that draws serves one row).
 * When every sampler is greedy, or a chain of temperature, top-k, top-p and min-p only, the
 * choice runs on the backend (CUDA: only the ids and logprobs cross to the host; a greedy row
 * among drawing ones runs as top-k 1, which picks the same id); otherwise every row's logits come
 * back and each sampler samples its row on the host. Errors as brisk_context_decode_batch, and
 * BRISK_ERR_BACKEND when a row's logits hold NaN (or, when drawing, +inf or only -inf); after an
 * error no sequence has changed and no sampler's generator has moved. */
BRISK_API brisk_status brisk_context_decode_batch_sample(brisk_context *ctx, const int *seqs,
                                                         const int32_t *tokens, int n,
                                                         brisk_sampler *const *samplers,
                                                         int32_t *next, float *logprob);

/* Positions a sequence can hold (the context size). */
BRISK_API int brisk_context_n_ctx(const brisk_context *ctx);

/* Bytes one cached token holds in the KV cache over all layers (its K and V rows): what
 * attention reads per token of context, e.g. to count a batched step's reads. */
BRISK_API size_t brisk_context_kv_bytes_per_token(const brisk_context *ctx);

/* Tokens held by sequence `seq` (its current length). */
BRISK_API int brisk_context_seq_len(const brisk_context *ctx, int seq);

/* Drops positions >= keep of sequence `seq` (keep = 0 clears it), returning its KV blocks to the
 * pool. */
BRISK_API brisk_status brisk_context_seq_truncate(brisk_context *ctx, int seq, int keep);

/* Measures the read bandwidth of the memory the context's backend computes from (host RAM for
 * CPU backends, device memory for GPUs) in GB/s, so speeds can be reported as a fraction of the
 * floor measured in the same run. Takes about a second. */
BRISK_API brisk_status brisk_context_measure_bandwidth(brisk_context *ctx, double *gbps);

/* The backend the context computes on ("cpu-ref", "cpu-avx2", "cuda", ...). */
BRISK_API const char *brisk_context_backend_name(const brisk_context *ctx);

/* ---------------------------------------------------------------------------------------------
 * Sampling
 * ------------------------------------------------------------------------------------------- */

/* The chain, in order (as mlx_lm): logit bias, repetition/presence/frequency penalties over the
 * last `penalty_window` tokens, then greedy when temperature == 0, else top-k, top-p and min-p on
 * the log-probabilities (ties at an edge keep the lower id) and a draw from
 * softmax(logits / temperature): one uniform u from the seeded generator, and the kept ids walked
 * in id order until their running weight passes u times the total. */
typedef struct brisk_sampler_params {
    float temperature;        /* 0 = greedy (argmax) */
    int top_k;                /* 0 = off */
    float top_p;              /* 0 or 1 = off */
    float min_p;              /* 0 = off */
    float repetition_penalty; /* 1 = off; HF/mlx rule: logit > 0 ? logit / p : logit * p */
    float presence_penalty;   /* subtracted once from every token seen in the window */
    float frequency_penalty;  /* subtracted once per occurrence in the window */
    int penalty_window;       /* tokens the penalties look back over (default 64) */
    uint64_t seed;            /* the same seed and inputs give the same tokens */
    const int32_t *bias_ids;  /* logit bias: logits[bias_ids[i]] += bias_values[i] */
    const float *bias_values;
    int n_bias;
} brisk_sampler_params;

/* Greedy, no filters, no penalties, seed 0. */
BRISK_API brisk_sampler_params brisk_sampler_default_params(void);

/* Creates a sampler for a vocabulary of n_vocab. The bias arrays are copied. Not thread-safe:
 * one sampler per sequence. On failure *out is NULL. */
BRISK_API brisk_status brisk_sampler_create(const brisk_sampler_params *params, int n_vocab,
                                            brisk_sampler **out);
/* Frees a sampler. NULL is a no-op. */
BRISK_API void brisk_sampler_destroy(brisk_sampler *s);

/* Records a token of the sequence (prompt or generated) for the penalties. */
BRISK_API void brisk_sampler_accept(brisk_sampler *s, int32_t token);

/* Forgets the accepted tokens and reseeds the generator. */
BRISK_API void brisk_sampler_reset(brisk_sampler *s, uint64_t seed);

/* True when brisk_sampler_sample reduces to the argmax of the raw logits (temperature 0, no logit
 * bias, no penalties): the caller may then use brisk_context_eval_greedy. */
BRISK_API bool brisk_sampler_is_greedy(const brisk_sampler *s);

/* True when brisk_context_decode_launch takes s: greedy, or a chain of temperature, top-k, top-p
 * and min-p without logit bias or penalties. */
BRISK_API bool brisk_sampler_can_pipeline(const brisk_sampler *s);

/* Picks the next token from logits[n_vocab] (modified in place). *logprob, when not NULL,
 * receives the log-probability of the token under the penalised distribution at temperature 1.
 * The token is NOT accepted automatically. Errors: BRISK_ERR_INVALID_ARG when logits hold NaN, or
 * when drawing (temperature > 0) from logits that hold +inf or are all -inf. */
BRISK_API brisk_status brisk_sampler_sample(brisk_sampler *s, float *logits, int32_t *token,
                                            float *logprob);

/* ---------------------------------------------------------------------------------------------
 * Hugging Face hub (model folders from the HF cache, downloaded when missing)
 * ------------------------------------------------------------------------------------------- */

typedef struct brisk_hub_params {
    const char *revision; /* branch, tag or 40-hex commit; NULL = "main" */
    bool offline;         /* never use the network (HF_HUB_OFFLINE=1 in the environment does too) */
    bool progress;        /* a progress bar on stderr when it is a TTY, and a notice on stderr when
                           * a cached snapshot stands in for an unreachable hub; quiet otherwise */
} brisk_hub_params;

/* revision NULL ("main"), offline false, progress false. */
BRISK_API brisk_hub_params brisk_hub_default_params(void);

/* The cache folder shared with huggingface_hub: $HF_HUB_CACHE, else $HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. The folder need not exist.
 * *path_out is malloc'd (free with brisk_free); NULL after an error. Thread-safe as long as no
 * thread changes the environment meanwhile. */
BRISK_API brisk_status brisk_hub_cache_dir(char **path_out);

/* Resolves `ref` to a local model folder:
 * - an existing folder: *path_out is a copy of `ref`;
 * - a repo id "org/name": the snapshot folder {cache}/models--org--name/snapshots/{commit} for
 *   params->revision, in the layout huggingface_hub uses (blobs/, snapshots/ symlinks, refs/).
 *   Online, the file list comes from $HF_ENDPOINT (default https://huggingface.co) and the files
 *   mlx_lm would fetch (*.json, model*.safetensors or else *.safetensors, *.jinja, *.txt,
 *   tokenizer.model, *.tiktoken) that are not in the snapshot yet are downloaded, resuming any
 *   interrupted download; $HF_TOKEN (or the token file of huggingface-cli login) is sent to the
 *   endpoint's host only. When the hub cannot be reached but a complete snapshot is cached, that
 *   snapshot is used. Offline, only the cache is read.
 * params may be NULL (defaults). *path_out is malloc'd (free with brisk_free); NULL after an
 * error. Errors: BRISK_ERR_NOT_FOUND for a ref that is neither a folder nor a repo id, a repo or
 * file the hub does not have (404) or will not show (401/403: gated or private, needs HF_TOKEN),
 * and an uncached repo while offline; BRISK_ERR_IO for network failures, other HTTP statuses and
 * file-system errors; BRISK_ERR_FORMAT for a malformed or unsafe answer from the server. After
 * an error the cache holds only complete files in snapshots/ (a partial download stays in
 * blobs/ as {commit}-{file}.incomplete for the next call to resume). Thread-safe; concurrent
 * calls, also from other processes, serialize per file on a lock in {cache}/.locks. */
BRISK_API brisk_status brisk_hub_resolve(const char *ref, const brisk_hub_params *params,
                                         char **path_out);

/* ---------------------------------------------------------------------------------------------
 * Tokenizer (tokenizer.json)
 * ------------------------------------------------------------------------------------------- */

/* A Hugging Face tokenizer.json BPE tokenizer (byte-level like Llama 3 / Qwen, or
 * SentencePiece-style like Llama 2 / Mistral), driven entirely by the file. Immutable after load:
 * every function below that takes a const tokenizer is thread-safe and may run concurrently. */
typedef struct brisk_tokenizer brisk_tokenizer;

/* Loads `path`: a tokenizer.json file, or a model folder (then DIR/tokenizer.json plus, when
 * present, DIR/tokenizer_config.json for bos_token/eos_token; for a file, a tokenizer_config.json
 * beside it is read too). Unknown component types are BRISK_ERR_UNSUPPORTED naming the type.
 * On success the caller owns *out (brisk_tokenizer_free); on failure *out is NULL and
 * brisk_last_error() says what and where. */
BRISK_API brisk_status brisk_tokenizer_load(const char *path, brisk_tokenizer **out);

/* Frees a tokenizer. NULL is a no-op. No detokenizer created from it may be used afterwards. */
BRISK_API void brisk_tokenizer_free(brisk_tokenizer *tok);

/* Encodes len bytes of UTF-8 text (no NUL needed) into ids, as Hugging Face tokenizers'
 * `encode(text, add_special_tokens=add_special)` does: added/special-token text in the input maps
 * to its id either way; add_special applies the post-processor (e.g. BOS). Input that is not
 * valid UTF-8 is rejected with BRISK_ERR_INVALID_ARG naming the byte offset. *n_out receives the
 * id count; when it exceeds cap the status is BRISK_ERR_BUFFER_TOO_SMALL and ids holds nothing
 * useful (call again with cap >= *n_out). ids may be NULL when cap is 0. Thread-safe. */
BRISK_API brisk_status brisk_tokenizer_encode(const brisk_tokenizer *tok, const char *text,
                                              size_t len, bool add_special, int32_t *ids,
                                              size_t cap, size_t *n_out);

/* Decodes ids into UTF-8 text like HF `decode(ids, skip_special_tokens=skip_special)`; invalid
 * byte sequences become U+FFFD. *len_out receives the text length (without NUL); when it exceeds
 * cap the status is BRISK_ERR_BUFFER_TOO_SMALL; a NUL is written when len < cap. An id outside
 * the vocabulary is BRISK_ERR_INVALID_ARG (HF silently drops it). Thread-safe. */
BRISK_API brisk_status brisk_tokenizer_decode(const brisk_tokenizer *tok, const int32_t *ids,
                                              size_t n, bool skip_special, char *buf, size_t cap,
                                              size_t *len_out);

/* The raw vocabulary piece of id (e.g. "Ġthe", "▁the", "<0x0A>", "<|eot_id|>"), owned by the
 * tokenizer; NULL when id is not in the vocabulary. Thread-safe. */
BRISK_API const char *brisk_tokenizer_token_text(const brisk_tokenizer *tok, int32_t id);

/* The id of a raw vocabulary piece or added token text, -1 when none. Thread-safe. */
BRISK_API int32_t brisk_tokenizer_token_id(const brisk_tokenizer *tok, const char *piece);

/* Vocabulary size: the largest id (model vocab or added token) + 1. */
BRISK_API int brisk_tokenizer_n_vocab(const brisk_tokenizer *tok);

/* True when id is an added token marked "special" (skipped by decode with skip_special). */
BRISK_API bool brisk_tokenizer_is_special(const brisk_tokenizer *tok, int32_t id);

/* BOS / EOS ids from tokenizer_config.json's bos_token / eos_token; -1 when none. */
BRISK_API int32_t brisk_tokenizer_bos_id(const brisk_tokenizer *tok);
BRISK_API int32_t brisk_tokenizer_eos_id(const brisk_tokenizer *tok);

/* Streaming detokenizer: push ids one at a time and get the text that became complete. Text is
 * emitted only at valid UTF-8 boundaries (bytes of a partial character are held), and the
 * concatenation of all push and flush outputs equals brisk_tokenizer_decode(all ids,
 * skip_special), SentencePiece's leading-space rule included. One detokenizer per stream: not
 * thread-safe; the tokenizer must outlive it. */
typedef struct brisk_detok brisk_detok;

/* Creates a detokenizer; the caller owns *out (brisk_detok_destroy). On failure *out is NULL. */
BRISK_API brisk_status brisk_detok_create(const brisk_tokenizer *tok, bool skip_special,
                                          brisk_detok **out);

/* Adds id and writes the newly complete text to buf (*len_out bytes, NUL when it fits; often 0).
 * On BRISK_ERR_BUFFER_TOO_SMALL (*len_out = needed) or any error the id is not consumed and the
 * state is unchanged, so the call may be retried. */
BRISK_API brisk_status brisk_detok_push(brisk_detok *d, int32_t id, char *buf, size_t cap,
                                        size_t *len_out);

/* Writes any held text (an incomplete character at the end shows as U+FFFD, as decode does).
 * Same buffer rules as push; the stream may continue afterwards. */
BRISK_API brisk_status brisk_detok_flush(brisk_detok *d, char *buf, size_t cap, size_t *len_out);

/* Forgets all pushed ids: the next push starts a new text. */
BRISK_API void brisk_detok_reset(brisk_detok *d);

/* Frees a detokenizer. NULL is a no-op. */
BRISK_API void brisk_detok_destroy(brisk_detok *d);

/* ---------------------------------------------------------------------------------------------
 * Chat templates (Jinja)
 * ------------------------------------------------------------------------------------------- */
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

/* ---------------------------------------------------------------------------------------------
 * Generation
 * ------------------------------------------------------------------------------------------- */

typedef enum brisk_stop_reason {
    BRISK_STOP_NONE = 0,
    BRISK_STOP_EOS,       /* an end-of-sequence token was sampled (it is not emitted) */
    BRISK_STOP_LENGTH,    /* max_tokens were generated */
    BRISK_STOP_CANCELLED, /* the callback returned false */
    BRISK_STOP_CONTEXT,   /* the sequence reached the context size */
} brisk_stop_reason;

typedef struct brisk_generate_params {
    int max_tokens;               /* tokens to generate at most (default 100; < 0 = no limit) */
    brisk_sampler_params sampler; /* default: greedy */
    const int32_t *extra_eos;     /* more stop ids, besides the model's and tokenizer's EOS */
    int n_extra_eos;
    bool ignore_eos;   /* keep going past EOS (benchmarks) */
    bool skip_special; /* special tokens produce no text (default true) */
} brisk_generate_params;

/* max_tokens 100, greedy sampling, skip_special true, no extra EOS. */
BRISK_API brisk_generate_params brisk_generate_default_params(void);

/* Called once per generated token: `text` is the text that became complete with it (valid
 * UTF-8, possibly empty; owned by the library, valid during the call), `token` its id and
 * `logprob` its log-probability. Return false to stop (BRISK_STOP_CANCELLED). When generation
 * ends with text still held (a character whose bytes were cut by the stop, shown as U+FFFD as
 * decode does), one last call carries it with token -1. */
typedef bool (*brisk_token_callback)(void *user, const char *text, size_t len, int32_t token,
                                     float logprob);

typedef struct brisk_generate_stats {
    int n_prompt;          /* tokens prefilled by this call */
    int n_generated;       /* tokens emitted through the callback */
    double prompt_seconds; /* prefill time (up to the first sampled token) */
    double gen_seconds;    /* time of the decode steps */
    brisk_stop_reason stop;
} brisk_generate_stats;

/* Appends `tokens` (not retained) to sequence `seq` of ctx (after what it already holds: a
 * chat keeps its cache across turns), then samples and feeds tokens until EOS, max_tokens, the
 * context size or cancellation. The text given to the callback continues the text of the whole
 * sequence (the detokenizer is primed with the new prompt tokens, so a SentencePiece continuation
 * keeps its leading space). On return the sequence holds the prompt and every generated token
 * except the last one sampled (which was not fed back). `stats` may be NULL. Errors from the
 * forward pass (BRISK_ERR_KV_FULL, ...) stop generation; the tokens fed so far stay in the
 * sequence. Not thread-safe for one context (see brisk_context_eval); the tokenizer may be shared.
 * The callback runs on the calling thread. */
BRISK_API brisk_status brisk_generate(brisk_context *ctx, int seq, const brisk_tokenizer *tok,
                                      const int32_t *tokens, int n_tokens,
                                      const brisk_generate_params *params, brisk_token_callback cb,
                                      void *user, brisk_generate_stats *stats);

/* The model a context was created for (owned by the caller who loaded it). */
BRISK_API brisk_model *brisk_context_model(const brisk_context *ctx);

#ifdef __cplusplus
}
#endif

#endif /* BRISK_H */
