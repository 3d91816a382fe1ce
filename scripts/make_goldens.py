#!/usr/bin/env python3
"""Golden fixtures for brisk's parity tests.

Writes tiny random-weight model folders under tests/golden/models/<name>/ (Hugging Face BF16/F16/F32
folders, and MLX affine-quantized folders produced by mlx-lm itself) plus reference logits:

  tokens.txt        input ids, one line, space separated (starts with BOS, has ids near the top of the vocab)
  logits.f32        Hugging Face transformers logits for all positions of one forward pass, computed with
                    the model in float64 on exactly the values stored in the folder; little-endian float32,
                    shape [n_tokens, vocab], row-major, no header
  logits_mlx.f32    (MLX folders) the same from mlx_lm loading the folder, run with float32 parameters
  mlx_dtype.txt     (MLX folders) the dtype mlx_lm ran in
  logits_decode.f32 (llama-bf16) HF incremental decode: prefill 8 tokens, then tokens 9..12 one at a
                    time with past_key_values; [4, vocab]

Deterministic: weights come from numpy generators with fixed seeds, files are written in a fixed order,
so rerunning reproduces identical bytes (checked with `--check`, which regenerates into a temp dir and
compares).  Needs the project venv: /work/venv/bin/python scripts/make_goldens.py
"""
import argparse
import copy
import filecmp
import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)  # deterministic CPU reductions
import transformers
from transformers import AutoModelForCausalLM, AutoConfig
import safetensors
import safetensors.torch

import mlx.core as mx
import mlx.nn as mnn
from mlx.utils import tree_flatten
import mlx_lm.utils as mlu

transformers.logging.set_verbosity_error()
mx.set_default_device(mx.cpu)

REPO = Path(__file__).resolve().parent.parent
OUT_DEFAULT = REPO / "tests" / "golden" / "models"

HIDDEN, INTER, LAYERS, HEADS, KV_HEADS = 128, 256, 2, 4, 2
PREFILL = 8  # decode golden: first 8 tokens as prefill, then 4 one at a time

# ---------------------------------------------------------------------------------------------
# families

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 256}
# head_dim 32, theta 5e5: wavelen_i = 2*pi*5e5^(2i/32) = 6.3, 14.3, 32.4, 73.5, 166.9, 379, ...
# high_freq_wavelen = 256/4 = 64, low_freq_wavelen = 256/1 = 256  ->  i = 0,1,2 untouched,
# i = 3,4 smoothed, i = 5..15 divided by 8.  No wavelength is near a band edge, so HF (<=/>=)
# and mlx-lm (strict </>) agree.

FAMILIES = {
    "llama": dict(
        seed=1001, vocab=256, tied=False, qkv_bias=False, qk_norm=False, head_dim=32,
        config={
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": [2, 3],
            "head_dim": 32, "hidden_act": "silu", "hidden_size": HIDDEN, "initializer_range": 0.02,
            "intermediate_size": INTER, "max_position_embeddings": 512, "mlp_bias": False,
            "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "num_key_value_heads": KV_HEADS,
            "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": LLAMA3_ROPE, "rope_theta": 500000.0,
            "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.51.3",
            "use_cache": True, "vocab_size": 256,
        }),
    "mistral": dict(
        seed=2002, vocab=288, tied=False, qkv_bias=False, qk_norm=False, head_dim=32,
        config={  # no head_dim key: hidden/heads = 32 (as in Mistral 7B configs)
            "architectures": ["MistralForCausalLM"], "model_type": "mistral",
            "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
            "hidden_size": HIDDEN, "initializer_range": 0.02, "intermediate_size": INTER,
            "max_position_embeddings": 512, "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
            "num_key_value_heads": KV_HEADS, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
            "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
            "transformers_version": "4.51.3", "use_cache": True, "vocab_size": 288,
        }),
    "qwen2": dict(
        seed=3003, vocab=320, tied=True, qkv_bias=True, qk_norm=False, head_dim=32,
        config={  # Qwen2.5-style: sliding_window set but use_sliding_window false -> no window
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
            "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
            "hidden_size": HIDDEN, "initializer_range": 0.02, "intermediate_size": INTER,
            "max_position_embeddings": 512, "max_window_layers": LAYERS, "num_attention_heads": HEADS,
            "num_hidden_layers": LAYERS, "num_key_value_heads": KV_HEADS, "rms_norm_eps": 1e-06,
            "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": 512,
            "tie_word_embeddings": True, "torch_dtype": "bfloat16", "transformers_version": "4.51.3",
            "use_cache": True, "use_sliding_window": False, "vocab_size": 320,
        }),
    "qwen3": dict(
        seed=4004, vocab=384, tied=True, qkv_bias=False, qk_norm=True, head_dim=64,
        config={  # head_dim 64 != hidden/heads = 32
            "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
            "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
            "head_dim": 64, "hidden_act": "silu", "hidden_size": HIDDEN, "initializer_range": 0.02,
            "intermediate_size": INTER, "max_position_embeddings": 512, "max_window_layers": LAYERS,
            "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "num_key_value_heads": KV_HEADS,
            "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": None,
            "tie_word_embeddings": True, "torch_dtype": "bfloat16", "transformers_version": "4.51.3",
            "use_cache": True, "use_sliding_window": False, "vocab_size": 384,
        }),
}

# per-layer overrides for llama-mixed (global 4-bit gs64; modules not listed use the global params).
# 3/5/6-bit values straddle 32-bit words.  o_proj of layer 1 is stored BF16 and marked `false`.
MIXED_OVERRIDES = {
    "model.embed_tokens": {"group_size": 32, "bits": 6, "mode": "affine"},
    "model.layers.0.self_attn.q_proj": {"group_size": 128, "bits": 2, "mode": "affine"},
    "model.layers.0.self_attn.k_proj": {"group_size": 32, "bits": 3, "mode": "affine"},
    "model.layers.0.self_attn.v_proj": {"group_size": 64, "bits": 5},  # no "mode" -> affine
    "model.layers.0.mlp.down_proj": {"group_size": 128, "bits": 6, "mode": "affine"},
    "model.layers.1.self_attn.o_proj": False,
    "model.layers.1.mlp.gate_proj": {"group_size": 128, "bits": 3, "mode": "affine"},
    "model.layers.1.mlp.up_proj": {"group_size": 32, "bits": 5, "mode": "affine"},
    "model.layers.1.mlp.down_proj": {"group_size": 64, "bits": 8, "mode": "affine"},
    "lm_head": {"group_size": 64, "bits": 5, "mode": "affine"},
}


def make_tokens(vocab, seed):
    """12 ids: BOS, a mix of low/mid ids, and several of the top ids of the vocab."""
    rng = np.random.default_rng(seed + 7)
    mid = [int(x) for x in rng.choice(np.arange(4, vocab - 8), size=6, replace=False)]
    toks = [1, mid[0], vocab - 1, mid[1], mid[2], vocab - 2, 5, mid[3], vocab - 5, mid[4], vocab - 3, mid[5]]
    assert len(toks) == 12 and max(toks) < vocab
    return toks


def make_weights(fam):
    """float32 weights with HF names, fixed seed.  Scales chosen so that activations, attention
    and logits are O(1) (std-0.02 init would give near-uniform logits and hide bugs)."""
    rng = np.random.default_rng(fam["seed"])
    V, D, F, hd = fam["vocab"], HIDDEN, INTER, fam["head_dim"]
    qd, kvd = HEADS * hd, KV_HEADS * hd
    W = {}

    def lin(out, inp, gain=1.0):
        return (rng.standard_normal((out, inp)) * (gain / np.sqrt(inp))).astype(np.float32)

    def normw(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    # tied models use the embedding as the output projection: keep it smaller so logits stay O(10)
    emb_std = 0.25 if fam["tied"] else 1.0
    W["model.embed_tokens.weight"] = (emb_std * rng.standard_normal((V, D))).astype(np.float32)
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        W[p + "input_layernorm.weight"] = normw(D)
        W[p + "self_attn.q_proj.weight"] = lin(qd, D, 1.5)
        W[p + "self_attn.k_proj.weight"] = lin(kvd, D, 1.5)
        W[p + "self_attn.v_proj.weight"] = lin(kvd, D)
        if fam["qkv_bias"]:
            W[p + "self_attn.q_proj.bias"] = (0.3 * rng.standard_normal(qd)).astype(np.float32)
            W[p + "self_attn.k_proj.bias"] = (0.3 * rng.standard_normal(kvd)).astype(np.float32)
            W[p + "self_attn.v_proj.bias"] = (0.3 * rng.standard_normal(kvd)).astype(np.float32)
        if fam["qk_norm"]:
            W[p + "self_attn.q_norm.weight"] = normw(hd)
            W[p + "self_attn.k_norm.weight"] = normw(hd)
        W[p + "self_attn.o_proj.weight"] = lin(D, qd)
        W[p + "post_attention_layernorm.weight"] = normw(D)
        W[p + "mlp.gate_proj.weight"] = lin(F, D)
        W[p + "mlp.up_proj.weight"] = lin(F, D)
        W[p + "mlp.down_proj.weight"] = lin(D, F)
    W["model.norm.weight"] = normw(D)
    if not fam["tied"]:
        W["lm_head.weight"] = lin(V, D, 2.0)
    return W


# ---------------------------------------------------------------------------------------------
# file helpers

def write_json(path, obj, indent=2):
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent, sort_keys=True)
        f.write("\n")


def write_tokens(d, toks):
    (d / "tokens.txt").write_text(" ".join(map(str, toks)) + "\n")


def write_f32(path, arr):
    a = np.ascontiguousarray(np.asarray(arr, dtype="<f4"))
    a.tofile(path)


def save_hf_safetensors(path, W, dtype):
    """HF-style file (safetensors' own writer: header padded to 8, sorted order, format pt)."""
    ts = {k: torch.from_numpy(v).to(dtype).contiguous() for k, v in W.items()}
    safetensors.torch.save_file(ts, str(path), metadata={"format": "pt"})


ST_NP = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "U32": "<u4", "F64": "<f8"}


def read_safetensors_np(path):
    """Own minimal reader (independent of mlx): name -> (dtype string, numpy array; BF16 as float32)."""
    b = Path(path).read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    base = 8 + n
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        a = np.frombuffer(b[base + s: base + e], dtype=ST_NP[v["dtype"]]).reshape(v["shape"])
        if v["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[k] = (v["dtype"], a)
    return hdr, out


def read_folder_np(d):
    files = sorted(d.glob("model*.safetensors"))
    T = {}
    for f in files:
        _, t = read_safetensors_np(f)
        T.update(t)
    return T


def unpack_bits(packed, bits):
    """MLX affine packing (FORMATS.md 1.3): each row is a little-endian bit stream, value k in
    stream bits [k*bits, (k+1)*bits); stream bit b = bit b%32 of word b/32."""
    rows, nw = packed.shape
    by = np.ascontiguousarray(packed.astype("<u4")).view(np.uint8).reshape(rows, nw * 4)
    bitstream = np.unpackbits(by, axis=1, bitorder="little")  # [rows, nw*32], LSB first
    cols = nw * 32 // bits
    v = bitstream.reshape(rows, cols, bits).astype(np.uint32)
    return (v << np.arange(bits, dtype=np.uint32)).sum(axis=2).astype(np.uint32)


def dequant_affine(packed, scales, biases, group_size, bits):
    q = unpack_bits(packed, bits).astype(np.float64)
    rows, cols = q.shape
    assert scales.shape == (rows, cols // group_size), (scales.shape, rows, cols, group_size)
    s = scales.astype(np.float64)[:, :, None]
    b = biases.astype(np.float64)[:, :, None]
    return (s * q.reshape(rows, cols // group_size, group_size) + b).reshape(rows, cols)


def dequant_folder(d, config):
    """float64 weights with HF names, exactly the values the MLX folder represents."""
    T = read_folder_np(d)
    quant = config["quantization"]
    out, qinfo = {}, {}
    for k, (dt, a) in T.items():
        if k.endswith(".scales") or k.endswith(".biases"):
            continue
        if dt == "U32":
            mod = k[: -len(".weight")]
            p = quant.get(mod, None)
            assert p is not False, f"{mod}: U32 weight but config says false"
            if p is None:
                p = quant
            gs, bits = p.get("group_size", 64), p.get("bits", 4)
            assert p.get("mode", "affine") == "affine"
            s, b = T[mod + ".scales"][1], T[mod + ".biases"][1]
            assert T[mod + ".scales"][0] == "BF16" and T[mod + ".biases"][0] == "BF16"
            # shape checks of FORMATS.md 1.4
            assert a.shape[1] * 32 % bits == 0 and s.shape[1] * gs == a.shape[1] * 32 // bits
            out[k] = dequant_affine(a, s, b, gs, bits)
            qinfo[mod] = (bits, gs)
            # cross-check the unpacker against mlx's own dequantize (float32 scales -> exact)
            ref = mx.dequantize(mx.array(a), mx.array(s), mx.array(b), group_size=gs, bits=bits)
            assert np.array_equal(np.array(ref, dtype=np.float32), out[k].astype(np.float32)), mod
        else:
            out[k] = a.astype(np.float64)
            if k.endswith(".weight") and k[: -len(".weight")] in quant and quant[k[: -len(".weight")]] is False:
                qinfo[k[: -len(".weight")]] = False
    return out, qinfo


# ---------------------------------------------------------------------------------------------
# reference computations

def hf_config_from_dict(cfgd):
    d = {k: v for k, v in cfgd.items() if k not in ("quantization", "quantization_config")}
    cls = transformers.CONFIG_MAPPING[d["model_type"]]
    return cls.from_dict(d)


def hf_model_from_weights(cfgd, W64):
    """transformers model in float64 with the given float64 weights."""
    cfg = hf_config_from_dict(cfgd)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float64, attn_implementation="eager")
    sd = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) for k, v in W64.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    allowed_missing = {"lm_head.weight"} if cfg.tie_word_embeddings else set()
    assert not unexpected, unexpected
    assert set(missing) <= allowed_missing, missing
    if cfg.tie_word_embeddings:
        model.tie_weights()
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model.eval()


def hf_model_from_folder(d):
    """from_pretrained on the folder itself (so transformers parses config.json / shards as a user
    would), in the stored dtype, then upcast to float64."""
    model, info = AutoModelForCausalLM.from_pretrained(str(d), attn_implementation="eager",
                                                       output_loading_info=True)
    cfg = model.config
    allowed_missing = {"lm_head.weight"} if cfg.tie_word_embeddings else set()
    assert not info["unexpected_keys"], info
    assert set(info["missing_keys"]) <= allowed_missing, info
    assert not info.get("mismatched_keys"), info
    # check the in-memory weights are exactly the stored ones
    T = read_folder_np(d)
    sd = model.state_dict()
    for k, (dt, a) in T.items():
        assert np.array_equal(sd[k].float().numpy(), a.astype(np.float32)), k
    return model.double().eval()


@torch.no_grad()
def hf_logits(model, toks):
    ids = torch.tensor([toks])
    return model(ids).logits[0].double().numpy()


@torch.no_grad()
def hf_decode_logits(model, toks, prefill):
    ids = torch.tensor([toks])
    # transformers 5.24 names the KV cache `cache` (`past_key_values` is its deprecated alias)
    out = model(ids[:, :prefill], use_cache=True)
    past = out.cache
    assert past.get_seq_length() == prefill
    rows = []
    for i in range(prefill, len(toks)):
        out = model(ids[:, i:i + 1], cache=past, use_cache=True)
        past = out.cache
        assert past.get_seq_length() == i + 1
        rows.append(out.logits[0, -1].double().numpy())
    return np.stack(rows)


def mlx_logits(d, dtype=mx.float32):
    model, _ = mlu.load_model(Path(d))
    model.set_dtype(dtype)  # floating params (scales, biases, norms, float weights); U32 untouched
    for k, v in tree_flatten(model.parameters()):
        assert v.dtype in (dtype, mx.uint32), (k, v.dtype)
    logits = model(mx.array([TOKS_CACHE[str(d)]]))
    mx.eval(logits)
    return np.array(logits[0].astype(mx.float32)).astype(np.float64)


TOKS_CACHE = {}


def f32_noise(model64, toks, lg64):
    """How far transformers itself lands when the same model runs in float32 (what a float32
    engine should expect)."""
    m32 = copy.deepcopy(model64).float()
    return rel_l2(hf_logits(m32, toks), lg64)


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def max_abs(a, b):
    return float(np.max(np.abs(a - b)))


# ---------------------------------------------------------------------------------------------
# fixture writers

def write_hf_folder(d, cfgd, W, dtype, shards=None, gen_eos=None):
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / "config.json", cfgd)
    if gen_eos is not None:
        write_json(d / "generation_config.json", {
            "_from_model_config": True, "bos_token_id": cfgd["bos_token_id"], "eos_token_id": gen_eos,
            "transformers_version": cfgd.get("transformers_version", "4.51.3")})
    if shards is None:
        save_hf_safetensors(d / "model.safetensors", W, dtype)
    else:
        # shards: list of name lists; HF naming + index as save_pretrained writes it
        n = len(shards)
        weight_map, total = {}, 0
        for i, names in enumerate(shards):
            fn = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            save_hf_safetensors(d / fn, {k: W[k] for k in names}, dtype)
            for k in names:
                weight_map[k] = fn
                total += W[k].size * torch.tensor([], dtype=dtype).element_size()
        write_json(d / "model.safetensors.index.json",
                   {"metadata": {"total_size": int(total)}, "weight_map": dict(sorted(weight_map.items()))})


def write_mlx_folder(src, d, gs, bits, quant_predicate=None, false_layers=()):
    """Quantize the HF folder `src` with mlx-lm's own code path (as mlx_lm.convert does: load,
    quantize_model, save_model, save_config) into `d`."""
    model, config = mlu.load_model(Path(src), lazy=False)
    for k, v in tree_flatten(model.parameters()):
        assert v.dtype == mx.bfloat16, (k, v.dtype)  # convert would cast to torch_dtype=bfloat16
    model, config = mlu.quantize_model(model, config, gs, bits, quant_predicate=quant_predicate)
    if false_layers:
        # mlx-lm's quantize_model does not record layers its predicate skipped; the loader
        # (load_model class_predicate) honours an explicit `false` entry, which some
        # published MLX models carry.  Add it so the C loader is tested on it.
        for p in false_layers:
            config["quantization"][p] = False
    d.mkdir(parents=True, exist_ok=True)
    mlu.save_model(d, model)
    mlu.save_config(config, d / "config.json")
    if (Path(src) / "generation_config.json").exists():
        shutil.copy(Path(src) / "generation_config.json", d / "generation_config.json")
    return config


def mixed_predicate(path, module):
    if path in MIXED_OVERRIDES:
        v = MIXED_OVERRIDES[path]
        return dict(v) if isinstance(v, dict) else False
    return True


# ---------------------------------------------------------------------------------------------

def generate(out):
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    report = {}  # name -> dict
    decode_report = {}

    for fam_name, fam in FAMILIES.items():
        W32 = make_weights(fam)
        toks = make_tokens(fam["vocab"], fam["seed"])
        cfg = dict(fam["config"])
        bf = f"{fam_name}-bf16"
        d = out / bf
        write_hf_folder(d, cfg, W32, torch.bfloat16,
                        gen_eos=cfg["eos_token_id"] if fam_name == "llama" else None)
        m = hf_model_from_folder(d)
        lg = finish_hf(bf, d, toks, m, "BF16 weights", report)
        # mlx-lm on the bf16 folder (sanity only: same architecture semantics; not stored)
        report[bf]["mlx_f32_rel_l2"] = rel_l2(mlx_logits(d), lg)
        if fam_name == "llama":
            report[bf]["rope_bands"] = check_llama3_bands(m)
            dec = hf_decode_logits(m, toks, PREFILL)
            write_f32(d / "logits_decode.f32", dec)
            decode_report = dict(shape=list(dec.shape), max_abs_vs_full=max_abs(dec, lg[PREFILL:]),
                                 rel_l2_vs_full=rel_l2(dec, lg[PREFILL:]))
            # noise floor of the reference itself: eager vs sdpa attention (both float64 model)
            m_sdpa = AutoModelForCausalLM.from_pretrained(str(d), attn_implementation="sdpa").double().eval()
            report[bf]["eager_vs_sdpa_rel_l2"] = rel_l2(hf_logits(m_sdpa, toks), lg)

        for gs, bits in ((64, 4), (32, 8)):
            qn = f"{fam_name}-q{bits}g{gs}"
            qd = out / qn
            qcfg = write_mlx_folder(d, qd, gs, bits)
            finish_mlx(qn, qd, qcfg, toks, report)

        if fam_name == "llama":
            llama_variants(out, fam, W32, toks, cfg, d, report)

    write_readme_data(out, report, decode_report)
    return report, decode_report


def finish_hf(name, d, toks, model, note, report):
    TOKS_CACHE[str(d)] = toks
    write_tokens(d, toks)
    lg = hf_logits(model, toks)
    write_f32(d / "logits.f32", lg)
    r = dict(kind="hf", note=note, vocab=lg.shape[1], max_abs_logit=float(np.abs(lg).max()),
             hf_f32_vs_f64_rel_l2=f32_noise(model, toks, lg))
    report[name] = r
    return lg


def check_llama3_bands(model):
    """HF's llama3-scaled inv_freq vs the unscaled one: count untouched / smoothed / divided-by-8."""
    hd = model.config.head_dim
    inv = model.model.rotary_emb.inv_freq.double().numpy()
    base = 1.0 / (500000.0 ** (np.arange(0, hd, 2) / hd))
    r = base / inv
    bands = dict(untouched=int(np.sum(np.isclose(r, 1.0, rtol=1e-6))),
                 scaled=int(np.sum(np.isclose(r, 8.0, rtol=1e-6))))
    bands["smoothed"] = len(r) - bands["untouched"] - bands["scaled"]
    assert bands == dict(untouched=3, scaled=11, smoothed=2), (bands, r)
    return bands


def finish_mlx(name, d, qcfg, toks, report):
    TOKS_CACHE[str(d)] = toks
    write_tokens(d, toks)
    cfg_file = json.loads((d / "config.json").read_text())
    assert cfg_file["quantization"] == cfg_file["quantization_config"]
    W64, qinfo = dequant_folder(d, cfg_file)
    m = hf_model_from_weights(cfg_file, W64)
    lg = hf_logits(m, toks)
    write_f32(d / "logits.f32", lg)
    ml = mlx_logits(d, mx.float32)
    write_f32(d / "logits_mlx.f32", ml)
    (d / "mlx_dtype.txt").write_text(
        "float32 (mlx_lm.utils.load_model, then model.set_dtype(mx.float32): scales/biases/norms/"
        "float weights upcast exactly from bf16; packed uint32 weights unchanged; mlx CPU)\n")
    # also how far MLX's native bf16 run is (informational)
    ml16 = mlx_logits(d, mx.bfloat16)
    report[name] = dict(kind="mlx", vocab=lg.shape[1], max_abs_logit=float(np.abs(lg).max()),
                        hf_f32_vs_f64_rel_l2=f32_noise(m, toks, lg),
                        hf_vs_mlx_rel_l2=rel_l2(ml, lg), hf_vs_mlx_max_abs=max_abs(ml, lg),
                        hf_vs_mlx_bf16_rel_l2=rel_l2(ml16, lg),
                        quantized={k: v for k, v in sorted(qinfo.items())})
    return lg


def llama_variants(out, fam, W32, toks, cfg, d_bf16, report):
    # llama-linear-rope: old-style key "type"
    c = dict(cfg)
    c["rope_scaling"] = {"type": "linear", "factor": 2.0}
    c["rope_theta"] = 10000.0
    c["eos_token_id"] = 2
    d = out / "llama-linear-rope"
    write_hf_folder(d, c, W32, torch.bfloat16)
    m = hf_model_from_folder(d)
    assert m.config.rope_parameters["rope_type"] == "linear", m.config.rope_parameters
    lg = finish_hf("llama-linear-rope", d, toks, m, 'rope_scaling {"type": "linear", "factor": 2.0}, theta 1e4', report)
    report["llama-linear-rope"]["mlx_f32_rel_l2"] = rel_l2(mlx_logits(d), lg)

    # llama-ropeparams: transformers v5 style, no top-level rope_theta / rope_scaling
    c = {k: v for k, v in cfg.items() if k not in ("rope_theta", "rope_scaling", "torch_dtype",
                                                       "transformers_version")}
    c["rope_parameters"] = dict(LLAMA3_ROPE, rope_theta=500000.0)
    c["dtype"] = "bfloat16"
    c["transformers_version"] = "5.0.0"
    d = out / "llama-ropeparams"
    write_hf_folder(d, c, W32, torch.bfloat16)
    m = hf_model_from_folder(d)
    assert m.config.rope_parameters["rope_type"] == "llama3" and m.config.rope_parameters["rope_theta"] == 500000.0
    lg = finish_hf("llama-ropeparams", d, toks, m, "v5 rope_parameters (llama3, theta inside); same math as llama-bf16", report)
    ref = np.fromfile(out / "llama-bf16" / "logits.f32", dtype="<f4")
    report["llama-ropeparams"]["equal_to_llama_bf16"] = bool(np.array_equal(ref, lg.astype("<f4").ravel()))

    # llama-sharded: llama-bf16 weights over 2 files
    names = sorted(W32)
    first = [k for k in names if k.startswith("model.embed_tokens") or k.startswith("model.layers.0.")]
    second = [k for k in names if k not in first]
    d = out / "llama-sharded"
    write_hf_folder(d, dict(cfg), W32, torch.bfloat16, shards=[first, second], gen_eos=cfg["eos_token_id"])
    m = hf_model_from_folder(d)
    lg = finish_hf("llama-sharded", d, toks, m, "llama-bf16 split over 2 shards + index", report)
    report["llama-sharded"]["equal_to_llama_bf16"] = bool(np.array_equal(ref, lg.astype("<f4").ravel()))
    report["llama-sharded"]["mlx_f32_rel_l2"] = rel_l2(mlx_logits(d), lg)  # mlx-lm globs model*.safetensors

    # llama-f16 / llama-f32: the unrounded float32 weights stored as F16 / F32
    for nm, dt, tdt in (("llama-f16", torch.float16, "float16"), ("llama-f32", torch.float32, "float32")):
        c = dict(cfg)
        c["torch_dtype"] = tdt
        d = out / nm
        write_hf_folder(d, c, W32, dt)
        m = hf_model_from_folder(d)
        lg = finish_hf(nm, d, toks, m, f"{tdt.upper()} weights (the float32 weights before bf16 rounding)", report)
        report[nm]["mlx_f32_rel_l2"] = rel_l2(mlx_logits(d), lg)

    # llama-mixed: per-layer overrides
    d = out / "llama-mixed"
    false_layers = [k for k, v in MIXED_OVERRIDES.items() if v is False]
    qcfg = write_mlx_folder(d_bf16, d, 64, 4, quant_predicate=mixed_predicate, false_layers=false_layers)
    finish_mlx("llama-mixed", d, qcfg, toks, report)


def write_readme_data(out, report, decode_report):
    sizes = {}
    for name in sorted(report):
        sizes[name] = sum(f.stat().st_size for f in (out / name).iterdir())
    data = dict(report=report, decode=decode_report, sizes=sizes,
                versions=dict(torch=torch.__version__, transformers=transformers.__version__,
                              mlx=mx.__version__, mlx_lm=__import__("mlx_lm").__version__))
    write_json(out / "golden_report.json", _round(data))
    write_readme(out, data)


WHAT = {
    "llama-bf16": "Llama, BF16, untied lm_head, GQA 4q/2kv, head_dim 32 (explicit), rope_theta 5e5 + `rope_scaling` llama3 "
                  "(factor 8, low 1, high 4, original_max_position_embeddings 256: 3 frequencies untouched, 2 smoothed, "
                  "11 divided by 8), eos list [2, 3] (config + generation_config.json); also `logits_decode.f32`",
    "llama-q4g64": "llama-bf16 quantized by mlx-lm: affine 4-bit, group 64, embed + lm_head quantized, BF16 scales/biases/norms",
    "llama-q8g32": "same, affine 8-bit, group 32",
    "llama-mixed": "MLX per-layer overrides in `quantization` (2/3/5/6/8 bits, group 32/64/128; one entry without `mode`), "
                   "`model.layers.1.self_attn.o_proj: false` (stored BF16), embed 6-bit g32, lm_head 5-bit g64; "
                   "modules not listed use the global 4-bit g64",
    "llama-linear-rope": "llama-bf16 weights, rope_theta 1e4, old-style `rope_scaling: {\"type\": \"linear\", \"factor\": 2.0}`, eos 2",
    "llama-ropeparams": "llama-bf16 weights, transformers-v5 config: `rope_parameters` {rope_type llama3, rope_theta, ...}, "
                        "no top-level rope_theta/rope_scaling, `dtype` instead of `torch_dtype`; logits equal llama-bf16's",
    "llama-sharded": "llama-bf16 weights in model-00001-of-00002 / model-00002-of-00002 + model.safetensors.index.json; "
                     "logits equal llama-bf16's",
    "llama-f16": "the float32 llama weights (before BF16 rounding) stored as F16, torch_dtype float16",
    "llama-f32": "the float32 llama weights stored as F32, torch_dtype float32",
    "mistral-bf16": "Mistral, BF16, untied, rope_theta 1e6, sliding_window null, no head_dim key (hidden/heads = 32)",
    "mistral-q4g64": "mistral-bf16 via mlx-lm, affine 4-bit g64 (mlx-lm runs model_type mistral with its llama code)",
    "mistral-q8g32": "mistral-bf16 via mlx-lm, affine 8-bit g32",
    "qwen2-bf16": "Qwen2, BF16, q/k/v Linear biases (o none), tied (no lm_head.weight), rms_norm_eps 1e-6, rope_theta 1e6, "
                  "sliding_window 512 with use_sliding_window false (no window)",
    "qwen2-q4g64": "qwen2-bf16 via mlx-lm, 4-bit g64; `.bias` (Linear, BF16) next to `.biases` (quant); quantized embedding is the output projection",
    "qwen2-q8g32": "qwen2-bf16 via mlx-lm, 8-bit g32",
    "qwen3-bf16": "Qwen3, BF16, q_norm/k_norm (RMSNorm over head_dim before RoPE), explicit head_dim 64 != hidden/heads 32 "
                  "(q_proj 256x128, o_proj 128x256), tied",
    "qwen3-q4g64": "qwen3-bf16 via mlx-lm, 4-bit g64 (norms incl. q_norm/k_norm stay BF16)",
    "qwen3-q8g32": "qwen3-bf16 via mlx-lm, 8-bit g32",
}


def write_readme(out, data):
    R, sizes = data["report"], data["sizes"]
    L = []
    A = L.append
    A("# Golden models for HF / MLX parity tests")
    A("")
    A("Generated by `scripts/make_goldens.py` (run `/work/venv/bin/python scripts/make_goldens.py`; "
      "`--check` regenerates into a temp dir and confirms identical bytes). Random weights from fixed numpy seeds; "
      "nothing downloaded. This file is written by the script too.")
    A("")
    A("All models: hidden 128, intermediate 256, 2 layers, 4 query heads, 2 KV heads, head_dim 32 "
      "(qwen3: 64), SiLU MLP, bos 1. Weights are scaled so logits are O(10) (not the near-uniform logits of a "
      "std-0.02 init), norm weights are 1 + 0.2*N(0,1), so a wrong norm/rope/bias shows up.")
    A("")
    A("## Files in each folder")
    A("")
    A("- `config.json`, `model.safetensors` (or shards + index), `generation_config.json` (llama folders: eos [2, 3]). "
      "HF folders are written with the `safetensors` library (header padded to 8, metadata `format: pt`); "
      "MLX folders are written by mlx-lm itself (`load_model` -> `quantize_model` -> `save_model` + `save_config`, "
      "the same calls `mlx_lm.convert` makes): unpadded header, metadata `format: mlx`, always a "
      "`model.safetensors.index.json`, config with `quantization` and identical `quantization_config`.")
    A("- `tokens.txt`: 12 input ids on one line, space separated; position 0 is BOS (1); includes vocab-1, vocab-2, "
      "vocab-3, vocab-5.")
    A("- `logits.f32`: Hugging Face transformers logits for positions 0..11 of ONE forward pass over `tokens.txt`. "
      "Raw little-endian float32, shape [12, vocab] row-major, no header (size = 12*vocab*4 bytes). "
      "Computed with the transformers model in float64 (eager attention) holding exactly the stored values: "
      "HF folders via `from_pretrained` (stored dtype) then `.double()`; MLX folders by dequantizing every packed "
      "weight `w = scale*q + bias` (BF16 scales/biases upcast, own unpacker, checked bit-exact against `mx.dequantize`) "
      "into `AutoModelForCausalLM.from_config(...)` in float64.")
    A("- `logits_mlx.f32` (MLX folders): the same from **mlx_lm** loading the folder (`mlx_lm.utils.load_model`), "
      "with all floating parameters cast to float32 (`model.set_dtype(mx.float32)`; the upcast from BF16 is exact, "
      "packed U32 weights untouched), MLX CPU. `mlx_dtype.txt` records this.")
    A("- `logits_decode.f32` (llama-bf16 only): HF incremental decode - prefill tokens 0..7 with `use_cache`, "
      "then tokens 8..11 one at a time with the KV cache (`cache=`, the transformers-5.24 name of "
      "`past_key_values`); rows = logits after tokens 8, 9, 10, 11; shape [4, vocab].")
    A("- `golden_report.json` (this folder): all measured numbers below (3 significant digits), plus tool versions.")
    A("")
    A("## Fixtures")
    A("")
    A("| fixture | what it exercises | vocab | bytes |")
    A("| --- | --- | ---: | ---: |")
    for n in sorted(R):
        A(f"| `{n}` | {WHAT[n]} | {R[n]['vocab']} | {sizes[n]} |")
    A(f"| total | | | {sum(sizes.values())} |")
    A("")
    A("## Measured agreement (relative L2 = ||a-b|| / ||b|| over all 12 x vocab logits; b = `logits.f32`)")
    A("")
    A("| fixture | max abs logit | HF float32 vs HF float64 | mlx_lm float32 vs HF (`logits_mlx.f32`) | max abs diff | "
      "mlx_lm native BF16 vs HF (not stored) |")
    A("| --- | ---: | ---: | ---: | ---: | ---: |")
    for n in sorted(R):
        r = R[n]
        if r["kind"] == "mlx":
            A(f"| `{n}` | {r['max_abs_logit']:.4g} | {r['hf_f32_vs_f64_rel_l2']:.2e} | {r['hf_vs_mlx_rel_l2']:.2e} | "
              f"{r['hf_vs_mlx_max_abs']:.2e} | {r['hf_vs_mlx_bf16_rel_l2']:.2e} |")
        else:
            mx_ = r.get("mlx_f32_rel_l2")
            mx_s = (f"{mx_:.2e} (mlx_lm f32 on this HF folder; not stored)" if mx_ is not None else
                    "- (mlx-lm 0.32.2 ignores `rope_parameters`; it would run theta 1e4 unscaled)")
            A(f"| `{n}` | {r['max_abs_logit']:.4g} | {r['hf_f32_vs_f64_rel_l2']:.2e} | {mx_s} | | |")
    A("")
    d = data["decode"]
    A(f"Decode (`llama-bf16/logits_decode.f32` vs rows 8..11 of `logits.f32`): max abs diff {d['max_abs_vs_full']:.1e}, "
      f"rel L2 {d['rel_l2_vs_full']:.1e} (float64; equal up to rounding).")
    A("")
    A("Reading the numbers:")
    A("- HF-vs-MLX agreement at float32 (~6-8e-7 rel L2) is at the float32 noise level (HF's own float32 run is "
      "5-7e-7 from its float64 run): the packed files mean the same thing to our dequantizer and to MLX. "
      "If they disagreed the packing would be wrong. mlx-lm's native BF16 run is ~3-5e-2 away - never compare against that.")
    A("- The float64 reference is not pure float64: transformers computes RMSNorm (`hidden.to(float32)`), the "
      "eager softmax (`dtype=float32`) and RoPE cos/sin (float32 inv_freq) in float32 even in a float64 model. "
      "Replacing norm and softmax with float64 moves the logits by ~1.4e-7 (llama) / 1.7e-7 (qwen3) rel L2 "
      "(max abs 2e-6): that is the floor of these goldens. Eager vs sdpa attention: "
      f"{R['llama-bf16']['eager_vs_sdpa_rel_l2']:.1e} rel L2.")
    A("- Suggested tolerances for a float32 C engine reading the stored weights: rel L2 <= 1e-5 and "
      "max abs diff <= 1e-4 per logit (measured float32 engines land at <1e-6 rel L2, <2e-5 abs). Any bug in "
      "RoPE scaling, norms, biases, GQA mapping or dequantization is orders of magnitude above that.")
    A("- `llama-ropeparams` and `llama-sharded` produce logits byte-identical to `llama-bf16` "
      f"(checked: {R['llama-ropeparams']['equal_to_llama_bf16']}, {R['llama-sharded']['equal_to_llama_bf16']}); "
      "`llama-linear-rope` has the same weights and a different RoPE; `llama-f16`/`llama-f32` hold the unrounded "
      "weights so their logits differ slightly from llama-bf16.")
    A("")
    A("## Notes / deviations")
    A("")
    A("- llama3 rope: `original_max_position_embeddings` is 256 (not 64): with head_dim 32 and theta 5e5 the "
      "wavelengths are 6.3, 14.3, 32.4, 73.5, 166.9, 379, ... so 256 gives all three bands (3 untouched < 64, "
      "2 smoothed, 11 scaled > 256) with no wavelength near a band edge (where HF's and mlx-lm's </<= differ). "
      "The script asserts the band counts from transformers' own inv_freq. 64 would leave only 1 smoothed frequency.")
    A("- llama-mixed: `mlx_lm.utils.quantize_model` never writes `false` entries (layers its predicate skips "
      "are simply left unquantized and not recorded). The script quantizes with mlx-lm and then adds "
      "`\"model.layers.1.self_attn.o_proj\": false` to `quantization`/`quantization_config`; mlx-lm's loader honours it "
      "(checked by loading the folder back). Per-layer dicts are exactly what mlx-lm recorded "
      "(v_proj's entry omits `mode` on purpose).")
    A("- MLX folders keep the `generation_config.json` of their source (llama: eos [2, 3]); mlx-lm's `load_config` "
      "overrides `eos_token_id` from it.")
    A("- HF configs are written in transformers-4.x style (`torch_dtype`, `rope_theta`, `rope_scaling`, "
      "`transformers_version` 4.51.3) except `llama-ropeparams` (v5 style). transformers 5 reads both.")
    A("")
    v = data["versions"]
    A(f"Versions: torch {v['torch']}, transformers {v['transformers']}, mlx {v['mlx']}, mlx_lm {v['mlx_lm']} (CPU).")
    (out / "README.md").write_text("\n".join(L) + "\n")


def _round(o):
    if isinstance(o, float):
        return float("%.3g" % o)
    if isinstance(o, dict):
        return {k: _round(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_round(v) for v in o]
    return o


def verify(out):
    """Load every folder back: shapes, dtypes, config/quantization consistency."""
    out = Path(out)
    for d in sorted(p for p in out.iterdir() if p.is_dir()):
        cfg = json.loads((d / "config.json").read_text())
        toks = list(map(int, (d / "tokens.txt").read_text().split()))
        V = cfg["vocab_size"]
        lg = np.fromfile(d / "logits.f32", dtype="<f4")
        assert lg.size == len(toks) * V, d
        assert toks[0] == cfg["bos_token_id"] and max(toks) == V - 1
        T = read_folder_np(d)
        # the safetensors library must read every file and agree with our own reader
        for f in sorted(d.glob("model*.safetensors")):
            with safetensors.safe_open(str(f), framework="pt") as sf:
                for k in sf.keys():
                    t = sf.get_tensor(k)
                    assert tuple(t.shape) == T[k][1].shape, (f, k)
                    if t.dtype != torch.uint32:
                        assert np.array_equal(t.float().numpy(), T[k][1].astype(np.float32)), (f, k)
        idx = d / "model.safetensors.index.json"
        if idx.exists():
            wm = json.loads(idx.read_text())["weight_map"]
            assert set(wm) == set(T), d
        if "quantization" in cfg:
            ml = np.fromfile(d / "logits_mlx.f32", dtype="<f4")
            assert ml.size == lg.size
            model, _ = mlu.load_model(d)  # mlx-lm loads it back (strict)
            params = dict(tree_flatten(model.parameters()))
            assert set(params) == set(T), (d, set(params) ^ set(T))
            for k, (dt, a) in T.items():
                assert tuple(params[k].shape) == a.shape, (k, params[k].shape, a.shape)
        hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        emb = T["model.embed_tokens.weight"][1]
        if emb.dtype != np.uint32:
            assert emb.shape == (V, cfg["hidden_size"])
        assert ("lm_head.weight" in T) == (not cfg["tie_word_embeddings"]), d
        assert T["model.layers.0.self_attn.q_proj.%s" % ("scales" if "quantization" in cfg and
               cfg["quantization"].get("model.layers.0.self_attn.q_proj", True) is not False else "weight")][1].shape[0] \
            == cfg["num_attention_heads"] * hd
    print("verify: ok")


def print_table(report, decode_report):
    print(f"{'fixture':22s} {'kind':4s} {'vocab':>5s} {'max|logit|':>10s} {'HF-vs-MLX(f32) relL2':>21s} "
          f"{'maxabs':>9s} {'HF-vs-MLX(bf16) relL2':>22s}")
    for name in sorted(report):
        r = report[name]
        if r["kind"] == "mlx":
            print(f"{name:22s} mlx  {r['vocab']:5d} {r['max_abs_logit']:10.4f} {r['hf_vs_mlx_rel_l2']:21.3e} "
                  f"{r['hf_vs_mlx_max_abs']:9.2e} {r['hf_vs_mlx_bf16_rel_l2']:22.3e} "
                  f"(HF f32 {r['hf_f32_vs_f64_rel_l2']:.2e})")
        else:
            extra = r.get("mlx_f32_rel_l2")
            print(f"{name:22s} hf   {r['vocab']:5d} {r['max_abs_logit']:10.4f} "
                  f"(HF f32 {r['hf_f32_vs_f64_rel_l2']:.2e}) "
                  f"{'' if extra is None else '(mlx on bf16 folder %.3e)' % extra}")
    print("decode:", decode_report)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(OUT_DEFAULT))
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp dir and compare bytes with --out")
    a = ap.parse_args()
    if a.check:
        with tempfile.TemporaryDirectory() as t:
            generate(Path(t) / "models")
            cmp = filecmp.dircmp(a.out, Path(t) / "models")
            bad = []

            def walk(c, pre=""):
                bad.extend(pre + x for x in c.left_only + c.right_only + c.diff_files + c.funny_files)
                # dircmp compares shallowly by stat; do a byte compare
                for f in c.same_files:
                    if Path(c.left, f).read_bytes() != Path(c.right, f).read_bytes():
                        bad.append(pre + f)
                for n, s in c.subdirs.items():
                    walk(s, pre + n + "/")
            walk(cmp)
            if bad:
                print("NOT reproducible:", bad)
                sys.exit(1)
            print("reproducible: identical bytes")
        return
    report, dec = generate(a.out)
    verify(a.out)
    print_table(report, dec)


if __name__ == "__main__":
    main()
