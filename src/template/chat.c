/* chat.c: the public chat-template API: compile a template, find it in a model folder
 * (tokenizer_config.json, chat_template.jinja/.json) with its bos/eos tokens, and render messages.
 */
#include "template/tmpl.h"
#include "util/error.h"
#include "util/fsutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct brisk_chat_template {
    tp_arena arena; /* source copy, tokens and AST */
    tp_node *root;
    char *bos_token, *eos_token; /* malloc'd; NULL when the folder names none */
};

brisk_status brisk_chat_template_create(const char *source, size_t len, brisk_chat_template **out) {
    if (!out || (!source && len))
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "%s: NULL argument", __func__);
    *out = NULL;
    brisk_chat_template *t = calloc(1, sizeof *t);
    if (!t) return brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", __func__);
    t->arena.limit = TP_MAX_ARENA;
    /* Jinja normalizes \r\n and \r to \n and drops one trailing newline
     * (keep_trailing_newline=False) */
    char *src = tp_arena_alloc(&t->arena, len + 1);
    if (!src) {
        free(t);
        return brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", __func__);
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (source[i] == '\r') {
            src[n++] = '\n';
            if (i + 1 < len && source[i + 1] == '\n') i++;
        } else {
            src[n++] = source[i];
        }
    }
    if (n && src[n - 1] == '\n') n--;
    tp_err err;
    if (setjmp(err.jb)) {
        tp_arena_free(&t->arena);
        free(t);
        return brisk_errorf(err.st, "%s: %s", __func__, err.msg);
    }
    tp_tokens toks = {0};
    tp_lex(&t->arena, &err, src, n, &toks);
    t->root = tp_parse(&t->arena, &err, &toks);
    *out = t;
    return BRISK_OK;
}

void brisk_chat_template_free(brisk_chat_template *t) {
    if (!t) return;
    tp_arena_free(&t->arena);
    free(t->bos_token);
    free(t->eos_token);
    free(t);
}

const char *brisk_chat_template_bos(const brisk_chat_template *t) {
    return t ? t->bos_token : NULL;
}
const char *brisk_chat_template_eos(const brisk_chat_template *t) {
    return t ? t->eos_token : NULL;
}

/* ---- loading from a model folder ------------------------------------------------------------ */

static char *read_file(const char *dir, const char *name, size_t *len, brisk_status *st) {
    char *path = dir ? brisk_path_join(dir, name) : strdup(name); /* dir NULL: name is the path */
    char *buf = path ? brisk_read_file(path, len) : NULL;
    const int err = path ? errno : ENOMEM;
    free(path);
    *st = buf             ? BRISK_OK
          : err == ENOENT ? BRISK_ERR_NOT_FOUND
          : err == ENOMEM ? BRISK_ERR_OOM
                          : BRISK_ERR_IO;
    return buf;
}

/* A special token in tokenizer_config.json: a string or an AddedToken {"content": ...}. */
static char *token_string(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

/* chat_template as a string, or a list of {"name", "template"} (picks `name`, else "default"). */
static const char *pick_template(const cJSON *ct, const char *name) {
    if (cJSON_IsString(ct)) return name && strcmp(name, "default") ? NULL : ct->valuestring;
    if (!cJSON_IsArray(ct)) return NULL;
    const cJSON *item;
    cJSON_ArrayForEach(item, ct) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(item, "name");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(item, "template");
        if (cJSON_IsString(n) && cJSON_IsString(t) &&
            !strcmp(n->valuestring, name ? name : "default"))
            return t->valuestring;
    }
    return NULL;
}

brisk_status brisk_chat_template_load(const char *model_dir, const char *name,
                                      brisk_chat_template **out) {
    if (!model_dir || !out)
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "%s: NULL argument", __func__);
    *out = NULL;
    brisk_status st;
    size_t len = 0;
    cJSON *cfg = NULL;
    char *text = read_file(model_dir, "tokenizer_config.json", &len, &st);
    if (text) {
        cfg = cJSON_ParseWithLength(text, len);
        free(text);
        if (!cfg)
            return brisk_errorf(BRISK_ERR_FORMAT, "%s: %s/tokenizer_config.json is not valid JSON",
                                __func__, model_dir);
    } else if (st != BRISK_ERR_NOT_FOUND) {
        return brisk_errorf(st, "%s: cannot read %s/tokenizer_config.json", __func__, model_dir);
    }
    /* Where transformers looks: chat_template.jinja, then chat_template.json, then the config;
     * a named template may also be additional_chat_templates/<name>.jinja. */
    char *src = NULL, where[300] = "";
    if (name && strcmp(name, "default")) {
        char file[300];
        snprintf(file, sizeof file, "additional_chat_templates/%s.jinja", name);
        if (!strchr(name, '/') && (src = read_file(model_dir, file, &len, &st)))
            snprintf(where, sizeof where, "%s", file);
    } else if ((src = read_file(model_dir, "chat_template.jinja", &len, &st))) {
        snprintf(where, sizeof where, "chat_template.jinja");
    } else if ((text = read_file(model_dir, "chat_template.json", &len, &st))) {
        cJSON *j = cJSON_ParseWithLength(text, len);
        free(text);
        const char *s = pick_template(cJSON_GetObjectItemCaseSensitive(j, "chat_template"), name);
        if (s) src = strdup(s), len = strlen(s);
        cJSON_Delete(j);
        snprintf(where, sizeof where, "chat_template.json");
    }
    if (!src && cfg) {
        const char *s = pick_template(cJSON_GetObjectItemCaseSensitive(cfg, "chat_template"), name);
        if (s) src = strdup(s), len = strlen(s);
        snprintf(where, sizeof where, "tokenizer_config.json");
    }
    if (!src) {
        cJSON_Delete(cfg);
        return brisk_errorf(BRISK_ERR_NOT_FOUND, "%s: no chat template%s%s%s in %s", __func__,
                            name ? " named '" : "", name ? name : "", name ? "'" : "", model_dir);
    }
    brisk_chat_template *t = NULL;
    st = brisk_chat_template_create(src, len, &t);
    free(src);
    if (st != BRISK_OK) {
        cJSON_Delete(cfg);
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", brisk_last_error());
        return brisk_errorf(st, "%s: %s/%s: %s", __func__, model_dir, where, msg);
    }
    if (cfg) {
        t->bos_token = token_string(cfg, "bos_token");
        t->eos_token = token_string(cfg, "eos_token");
    }
    cJSON_Delete(cfg);
    *out = t;
    return BRISK_OK;
}

brisk_status brisk_chat_template_load_file(const char *path, const char *model_dir,
                                           brisk_chat_template **out) {
    if (!path || !out) return brisk_errorf(BRISK_ERR_INVALID_ARG, "%s: NULL argument", __func__);
    *out = NULL;
    brisk_status st;
    size_t len = 0;
    char *src = read_file(NULL, path, &len, &st);
    if (!src) return brisk_errorf(st, "%s: cannot read %s", __func__, path);
    cJSON *cfg = NULL;
    if (model_dir) {
        char *text = read_file(model_dir, "tokenizer_config.json", &len, &st);
        if (!text && st != BRISK_ERR_NOT_FOUND) {
            free(src);
            return brisk_errorf(st, "%s: cannot read %s/tokenizer_config.json", __func__,
                                model_dir);
        }
        cfg = text ? cJSON_ParseWithLength(text, len) : NULL;
        bool bad = text && !cfg;
        free(text);
        if (bad) {
            free(src);
            return brisk_errorf(BRISK_ERR_FORMAT, "%s: %s/tokenizer_config.json is not valid JSON",
                                __func__, model_dir);
        }
    }
    brisk_chat_template *t = NULL;
    st = brisk_chat_template_create(src, strlen(src), &t);
    free(src);
    if (st != BRISK_OK) {
        cJSON_Delete(cfg);
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", brisk_last_error());
        return brisk_errorf(st, "%s: %s: %s", __func__, path, msg);
    }
    if (cfg) {
        t->bos_token = token_string(cfg, "bos_token");
        t->eos_token = token_string(cfg, "eos_token");
    }
    cJSON_Delete(cfg);
    *out = t;
    return BRISK_OK;
}

/* ---- rendering ------------------------------------------------------------------------------ */

/* What apply_chat_template does to messages before rendering: drop keys whose value is None,
 * and mirror a message's reasoning (reasoning_content / thinking / reasoning) under "thinking"
 * and "reasoning_content". */
static tp_value prepare_messages(tp_rt *rt, tp_value msgs) {
    static const char *const reasoning_keys[] = {"reasoning_content", "thinking", "reasoning"};
    tp_list *l = msgs.u.list;
    for (size_t i = 0; i < l->n; i++) {
        if (l->items[i].kind != TV_DICT)
            tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "messages[%zu] is a %s, not an object", i,
                       tp_type_name(l->items[i]));
        tp_dict *m = l->items[i].u.dict, *d = tp_dict_new(rt, m->n + 2);
        tp_value reasoning = tp_none();
        for (size_t k = 0; k < 3 && reasoning.kind == TV_NONE; k++) {
            long j = tp_dict_find_str(m, reasoning_keys[k], strlen(reasoning_keys[k]));
            if (j >= 0) reasoning = m->vals[j];
        }
        if (reasoning.kind != TV_NONE) tp_dict_set(rt, d, tp_str("thinking", 8), reasoning);
        for (size_t k = 0; k < m->n; k++)
            if (m->vals[k].kind != TV_NONE) tp_dict_set(rt, d, m->keys[k], m->vals[k]);
        if (reasoning.kind != TV_NONE)
            tp_dict_set(rt, d, tp_str("reasoning_content", 17), reasoning);
        l->items[i].u.dict = d;
    }
    return msgs;
}

static void set_global(tp_rt *rt, tp_dict *g, const char *key, tp_value v) {
    tp_dict_set(rt, g, tp_str(key, strlen(key)), v);
}

brisk_status brisk_chat_template_render(const brisk_chat_template *t, const char *messages_json,
                                        const char *vars_json, bool add_generation_prompt,
                                        char **out_text, size_t *out_len) {
    if (!t || !messages_json || !out_text)
        return brisk_errorf(BRISK_ERR_INVALID_ARG, "%s: NULL argument", __func__);
    *out_text = NULL;
    if (out_len) *out_len = 0;
    tp_rt *rt = calloc(1, sizeof *rt);
    if (!rt) return brisk_errorf(BRISK_ERR_OOM, "%s: out of memory", __func__);
    rt->arena.limit = TP_MAX_ARENA;
    rt->now_override = -1;
    const char *now = getenv("BRISK_TEMPLATE_NOW"); /* tests pin strftime_now to a UTC instant */
    if (now && *now) rt->now_override = strtoll(now, NULL, 10);
    brisk_status st = BRISK_OK;
    tp_current_rt = rt;
    if (setjmp(rt->err.jb)) {
        tp_current_rt = NULL;
        st = rt->raised ? brisk_errorf(rt->err.st, "%s: raise_exception: %s", __func__, rt->err.msg)
                        : brisk_errorf(rt->err.st, "%s: %s", __func__, rt->err.msg);
        tp_arena_free(&rt->arena);
        free(rt);
        return st;
    }
    tp_value msgs, vars = tp_undef(NULL);
    st = tp_parse_json(rt, messages_json, strlen(messages_json), &msgs, "messages");
    if (st == BRISK_OK && msgs.kind != TV_LIST)
        tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "messages: expected a JSON array of message objects");
    if (st == BRISK_OK && vars_json) {
        st = tp_parse_json(rt, vars_json, strlen(vars_json), &vars, "vars");
        if (st == BRISK_OK && vars.kind != TV_DICT)
            tp_rt_fail(rt, BRISK_ERR_INVALID_ARG, "vars: expected a JSON object");
    }
    if (st != BRISK_OK) {
        rt->err.st = st;
        longjmp(rt->err.jb, 1);
    }
    tp_dict *g = tp_dict_new(rt, 16);
    set_global(rt, g, "messages", prepare_messages(rt, msgs));
    set_global(rt, g, "tools", tp_none()); /* transformers always passes these two */
    set_global(rt, g, "documents", tp_none());
    set_global(rt, g, "add_generation_prompt", tp_bool(add_generation_prompt));
    if (t->bos_token) set_global(rt, g, "bos_token", tp_str(t->bos_token, strlen(t->bos_token)));
    if (t->eos_token) set_global(rt, g, "eos_token", tp_str(t->eos_token, strlen(t->eos_token)));
    for (size_t i = 0; vars.kind == TV_DICT && i < vars.u.dict->n; i++)
        tp_dict_set(rt, g, vars.u.dict->keys[i], vars.u.dict->vals[i]);
    tp_buf out = {0};
    tp_render(rt, t->root, g, &out);
    char *text = malloc(out.n + 1);
    if (!text) tp_rt_fail(rt, BRISK_ERR_OOM, "out of memory for the %zu-byte result", out.n);
    if (out.n) memcpy(text, out.p, out.n);
    text[out.n] = 0;
    *out_text = text;
    if (out_len) *out_len = out.n;
    tp_current_rt = NULL;
    tp_arena_free(&rt->arena);
    free(rt);
    return BRISK_OK;
}
