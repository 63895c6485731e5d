"""Independent PyTorch oracle (float64) for WebLoRA's model tests.

Its own, deliberately plain model code for Llama (with Llama 3.x rope_scaling), Qwen2, Qwen3 (per-head q/k
norms, explicit head_dim), SmolLM3 (NoPE layers), Gemma 3 text (written from the maths of modeling_gemma3.py,
not by calling transformers: (1 + w) norms, four per layer, GeGLU, scaled embeddings, sliding-window layers with
their own RoPE base, query_pre_attn_scalar, soft caps), Mistral (sliding-window attention), Qwen2/Qwen3 sliding
layers (use_sliding_window, max_window_layers, layer_types) and GPT-2 (it does not import
pretrain.py),
written functionally over a dict of Hugging Face tensor names, with LoRA in PEFT semantics:
    h = W0·x (+ b) + s · B·(A·x),   A (r, in), B (out, r), s = alpha/r (alpha/sqrt(r) with rsLoRA)
GPT-2 Conv1D stores W0 as [in, out] (h = x·W0 + b); its LoRA A/B keep the (r, in)/(out, r) shapes.

  /usr/bin/python3 tools/golden.py selfcheck              gradcheck + formula cross-checks, writes nothing
  /usr/bin/python3 tools/golden.py golden [case ...]      tests/fixtures/<case>/golden.{json,safetensors}
  /usr/bin/python3 tools/golden.py train [case ...]       tests/fixtures/<case>/train_golden.{json,safetensors}
                                                          (default: gpt2-tiny weblora-llama-1m qwen3-gqa-tied gemma3-sliding-softcap)
  /usr/bin/python3 tools/golden.py all                    everything

Cases: gpt2-tiny llama-gqa-tied llama-untied qwen2-bias qwen3-gqa-tied qwen3-untied llama3-scaled smollm3-nope
gemma3-sliding-softcap gemma3-pattern-untied gemma3-final-softcap mistral-window qwen3-window qwen2-window
weblora-llama-1m (the bundled model in public/models/weblora-llama-1m, which must exist).
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
BUNDLED = os.path.join(ROOT, "public", "models", "weblora-llama-1m")
DT = torch.float64

# ----------------------------------------------------------------------------------------------
# safetensors (read + write), by hand

ST_DTYPES = {"F64": (np.float64, 8), "F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (None, 2),
             "I32": (np.int32, 4), "I64": (np.int64, 8)}


def save_safetensors(path, tensors, dtypes=None):
    # tensors: name -> torch tensor; dtypes: name -> "F32" | "F16" | "BF16" | "I32" (default F32 / I32 for ints)
    dtypes = dtypes or {}
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu()
        dt = dtypes.get(name, "I32" if not t.is_floating_point() else "F32")
        if dt == "BF16":
            b = t.to(torch.float32).to(torch.bfloat16).contiguous().view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            b = t.numpy().astype(np.dtype(ST_DTYPES[dt][0]).newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[8 + n + a:8 + n + b]
        if info["dtype"] == "BF16":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<i2").copy()).view(torch.bfloat16).to(torch.float32)
        else:
            t = torch.from_numpy(np.frombuffer(raw, dtype=np.dtype(ST_DTYPES[info["dtype"]][0]).newbyteorder("<")).copy())
        out[name] = t.reshape(info["shape"])
    return out


def round_to(t, dt):
    # what the weights are after being stored as dt on disk
    if dt == "F16":
        return t.to(torch.float16).to(DT)
    if dt == "BF16":
        return t.to(torch.float32).to(torch.bfloat16).to(DT)
    return t.to(torch.float32).to(DT)


# ----------------------------------------------------------------------------------------------
# building blocks


def lora_linear(x, W, b, name, lora, s, conv1d=False):
    # x is (N, in). W is (out, in) for nn.Linear, (in, out) for GPT-2 Conv1D.
    y = x @ W if conv1d else x @ W.t()
    if b is not None:
        y = y + b
    if name in lora:
        A, B = lora[name]  # A (r, in), B (out, r)
        y = y + s * ((x @ A.t()) @ B.t())
    return y


def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def silu(x):
    return x / (1.0 + torch.exp(-x))


def rope_inv_freq(cfg, D):
    # float64 inverse frequencies theta^(-2i/D), scaled as rope_scaling says (the maths of transformers'
    # modeling_rope_utils: linear divides by factor; llama3 keeps high frequencies, divides low ones by
    # factor and interpolates between, by wavelength 2*pi/inv against original_max_position_embeddings)
    inv = cfg["rope_theta"] ** (-torch.arange(D // 2, dtype=DT) * 2.0 / D)
    sc = cfg.get("rope_scaling")
    if not sc or sc.get("rope_type", sc.get("type")) == "default":
        return inv
    kind = sc.get("rope_type", sc.get("type"))
    if kind == "linear":
        return inv / sc["factor"]
    assert kind == "llama3", kind
    factor, low, high, old = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"], sc["original_max_position_embeddings"]
    out = []
    for f in inv.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < old / high:
            out.append(f)
        elif wavelen > old / low:
            out.append(f / factor)
        else:
            sm = (old / wavelen - low) / (high - low)
            out.append((1 - sm) * f / factor + sm * f)
    return torch.tensor(out, dtype=DT)


def hf_llama3_inv_freq_f32(cfg, D):
    # transformers' _compute_llama3_parameters as written, in float32 torch ops (what the loader must reproduce bit for bit)
    sc = cfg["rope_scaling"]
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    factor, low, high, old = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"], sc["original_max_position_embeddings"]
    low_freq_wavelen = old / low
    high_freq_wavelen = old / high
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old / wavelen - low) / (high - low)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


def rope(x, inv):
    # x is (B, H, T, D); HF rotate_half layout: dims i and i + D/2 form a pair rotated by pos·inv[i]
    B, H, T, D = x.shape
    half = D // 2
    ang = torch.arange(T, dtype=DT)[:, None] * inv[None, :]  # (T, half)
    c, s = torch.cos(ang), torch.sin(ang)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


def plain_inv(theta, D):
    return theta ** (-torch.arange(D // 2, dtype=DT) * 2.0 / D)


def causal_attention(q, k, v, scale=None, window=0, softcap=0.0):
    # q is (B, H, T, D), k/v are (B, Hkv, T, D); query head h reads kv head h // (H / Hkv). Scores scale·q·k
    # (default 1/sqrt(D)), soft-capped to c·tanh(s / c) when softcap = c > 0; position i sees keys j <= i and,
    # with a sliding window W > 0, i - W < j (transformers' sliding_window_overlay: kv_idx > q_idx - W)
    B, H, T, D = q.shape
    group = H // k.shape[1]
    k = torch.stack([k[:, h // group] for h in range(H)], dim=1)
    v = torch.stack([v[:, h // group] for h in range(H)], dim=1)
    att = (q @ k.transpose(-1, -2)) * (scale if scale is not None else 1 / math.sqrt(D))
    if softcap:
        att = softcap * torch.tanh(att / softcap)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    if window:
        mask = mask | torch.ones(T, T, dtype=torch.bool).tril(-window)
    att = att.masked_fill(mask, float("-inf"))
    att = torch.exp(att - att.max(-1, keepdim=True).values)
    att = att / att.sum(-1, keepdim=True)
    return att @ v


# ----------------------------------------------------------------------------------------------
# models: forward(W, cfg, ids, lora, s) -> logits (B, T, V), block inputs [ (B, T, C) ... ]


def llama_windows(cfg):
    # per layer: the sliding window (0: full causal attention).
    # Mistral: every layer slides by sliding_window (None: none).
    # Qwen2 / Qwen3 (Qwen2Config.__post_init__): sliding_window counts only with use_sliding_window; layer_types,
    # when absent, is "sliding_attention" for layers l >= max_window_layers if there is a window; a layer slides
    # when layer_types says so (Qwen2Attention), with the config's window.
    L = cfg["num_hidden_layers"]
    if cfg["model_type"] == "mistral":
        return [cfg.get("sliding_window") or 0] * L
    if cfg["model_type"] in ("qwen2", "qwen3"):
        sw = cfg.get("sliding_window", 4096) if cfg.get("use_sliding_window") else None
        types = cfg.get("layer_types") or [
            "sliding_attention" if sw is not None and l >= cfg.get("max_window_layers", 28) else "full_attention"
            for l in range(L)]
        assert sw is not None or "sliding_attention" not in types, "a sliding layer needs a window"
        return [sw if t == "sliding_attention" else 0 for t in types]
    return [0] * L


def llama_forward(W, cfg, ids, lora, s, x0=None):
    # Llama, Qwen2 (+ q/k/v biases), Qwen3 (+ per-head RMSNorm of q and k before RoPE, explicit head_dim),
    # SmolLM3 (layers with no_rope_layers[l] == 0 skip RoPE), Mistral (every layer slides by sliding_window),
    # Qwen2 / Qwen3 with use_sliding_window (the layers llama_windows says slide)
    B, T = ids.shape
    C, H, Hkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or C // H
    eps = cfg["rms_norm_eps"]
    inv = rope_inv_freq(cfg, D)
    uses_rope = cfg.get("no_rope_layers") or [1] * cfg["num_hidden_layers"]
    windows = llama_windows(cfg)
    x = W["model.embed_tokens.weight"][ids] if x0 is None else x0
    hidden = []
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        hidden.append(x)
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps).reshape(B * T, C)
        proj = lambda n, inp: lora_linear(inp, W[p + n + ".weight"], W.get(p + n + ".bias"), p + n, lora, s)
        q = proj("self_attn.q_proj", h).view(B, T, H, D)
        k = proj("self_attn.k_proj", h).view(B, T, Hkv, D)
        v = proj("self_attn.v_proj", h).view(B, T, Hkv, D).transpose(1, 2)
        if p + "self_attn.q_norm.weight" in W:  # Qwen3: RMSNorm over head_dim, per head
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        if uses_rope[l]:
            q, k = rope(q, inv), rope(k, inv)
        y = causal_attention(q, k, v, window=windows[l]).transpose(1, 2).reshape(B * T, H * D)
        x = x + proj("self_attn.o_proj", y).view(B, T, C)
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps).reshape(B * T, C)
        m = silu(proj("mlp.gate_proj", h)) * proj("mlp.up_proj", h)
        x = x + proj("mlp.down_proj", m).view(B, T, C)
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return x @ head.t(), hidden


def gemma_rms_norm(x, w, eps):
    # Gemma3RMSNorm: the weight is stored as w (initialised to 0) and used as 1 + w
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * (1.0 + w)


def gemma3_sliding(cfg):
    # per layer: sliding (True) or full attention, from layer_types or, in older configs, sliding_window_pattern
    if cfg.get("layer_types"):
        return [t == "sliding_attention" for t in cfg["layer_types"]]
    pattern = cfg.get("sliding_window_pattern", 6)
    return [bool((i + 1) % pattern) for i in range(cfg["num_hidden_layers"])]


def gemma3_normalizer(C):
    # Gemma3TextScaledWordEmbedding multiplies by torch.tensor(C ** 0.5) cast to the weight dtype: float32 here, the
    # dtype WebLoRA's golden test loads the weights in
    return torch.tensor(C ** 0.5, dtype=torch.float32).to(DT)


def gemma3_forward(W, cfg, ids, lora, s, x0=None):
    # Gemma 3 text: x·√C embeddings; per layer x += post_attn_norm(attn(in_norm(x))), x += post_ff_norm(mlp(pre_ff_norm(x)))
    # with (1 + w) norms, per-head q/k norms, RoPE from rope_local_base_freq on sliding layers and rope_theta (+ scaling)
    # on full ones, scores scaled by query_pre_attn_scalar^-1/2 and optionally soft-capped, GeGLU (gelu tanh);
    # the final logits optionally soft-capped
    B, T = ids.shape
    C, H, Hkv, D = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    inv_full, inv_local = rope_inv_freq(cfg, D), plain_inv(cfg["rope_local_base_freq"], D)
    scale = cfg["query_pre_attn_scalar"] ** -0.5
    sliding = gemma3_sliding(cfg)
    x = W["model.embed_tokens.weight"][ids] * gemma3_normalizer(C) if x0 is None else x0
    hidden = []
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        norm = lambda n, t: gemma_rms_norm(t, W[p + n + ".weight"], eps)
        proj = lambda n, inp: lora_linear(inp, W[p + n + ".weight"], None, p + n, lora, s)
        hidden.append(x)
        h = norm("input_layernorm", x).reshape(B * T, C)
        q = norm("self_attn.q_norm", proj("self_attn.q_proj", h).view(B, T, H, D)).transpose(1, 2)
        k = norm("self_attn.k_norm", proj("self_attn.k_proj", h).view(B, T, Hkv, D)).transpose(1, 2)
        v = proj("self_attn.v_proj", h).view(B, T, Hkv, D).transpose(1, 2)
        inv = inv_local if sliding[l] else inv_full
        q, k = rope(q, inv), rope(k, inv)
        window = cfg["sliding_window"] if sliding[l] else 0
        y = causal_attention(q, k, v, scale, window, cfg.get("attn_logit_softcapping") or 0.0)
        y = y.transpose(1, 2).reshape(B * T, H * D)
        x = x + norm("post_attention_layernorm", proj("self_attn.o_proj", y)).view(B, T, C)
        h = norm("pre_feedforward_layernorm", x).reshape(B * T, C)
        m = gelu_tanh(proj("mlp.gate_proj", h)) * proj("mlp.up_proj", h)
        x = x + norm("post_feedforward_layernorm", proj("mlp.down_proj", m)).view(B, T, C)
    x = gemma_rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", True) else W["lm_head.weight"]
    logits = x @ head.t()
    cap = cfg.get("final_logit_softcapping")
    return (cap * torch.tanh(logits / cap) if cap else logits), hidden


def gpt2_forward(W, cfg, ids, lora, s, x0=None):
    B, T = ids.shape
    C, H = cfg["n_embd"], cfg["n_head"]
    D, eps = C // H, cfg["layer_norm_epsilon"]
    x = (W["transformer.wte.weight"][ids] + W["transformer.wpe.weight"][:T][None]) if x0 is None else x0
    hidden = []
    for l in range(cfg["n_layer"]):
        p = f"transformer.h.{l}."
        hidden.append(x)
        conv = lambda n, inp: lora_linear(inp, W[p + n + ".weight"], W[p + n + ".bias"], p + n, lora, s, conv1d=True)
        h = layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps).reshape(B * T, C)
        qkv = conv("attn.c_attn", h)  # (B*T, 3C): q | k | v
        q, k, v = [t.reshape(B, T, H, D).transpose(1, 2) for t in qkv.split(C, dim=1)]
        y = causal_attention(q, k, v).transpose(1, 2).reshape(B * T, C)
        x = x + conv("attn.c_proj", y).view(B, T, C)
        h = layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps).reshape(B * T, C)
        x = x + conv("mlp.c_proj", gelu_tanh(conv("mlp.c_fc", h))).view(B, T, C)
    x = layer_norm(x, W["transformer.ln_f.weight"], W["transformer.ln_f.bias"], eps)
    return x @ W["transformer.wte.weight"].t(), hidden


def forward(family, W, cfg, ids, lora, s, x0=None):
    f = {"gpt2": gpt2_forward, "gemma3": gemma3_forward}.get(family, llama_forward)
    return f(W, cfg, ids, lora, s, x0)


def embed(family, W, ids):
    # the input of block 0: token (+ learned position) embeddings, (B, T, C)
    if family == "gpt2":
        return W["transformer.wte.weight"][ids] + W["transformer.wpe.weight"][:ids.shape[1]][None]
    if family == "gemma3":
        return W["model.embed_tokens.weight"][ids] * gemma3_normalizer(W["model.embed_tokens.weight"].shape[1])
    return W["model.embed_tokens.weight"][ids]


def cross_entropy(logits, labels):
    # labels already shifted: labels[b, t] is the target of position t; -100 = ignored; mean over the rest
    V = logits.shape[-1]
    lg = logits.reshape(-1, V)
    y = labels.reshape(-1)
    keep = y != -100
    lse = torch.logsumexp(lg[keep], dim=-1)
    return (lse - lg[keep].gather(1, y[keep][:, None])[:, 0]).mean()


# ----------------------------------------------------------------------------------------------
# model configs (real HF config.json format) and random weights


def module_shapes(family, cfg):
    # HF module path suffix -> (target name, in, out) for every LoRA-able linear in one block
    if family == "gpt2":
        C = cfg["n_embd"]
        I = cfg.get("n_inner") or 4 * C
        return {"attn.c_attn": ("c_attn", C, 3 * C), "attn.c_proj": ("c_proj", C, C),
                "mlp.c_fc": ("c_fc", C, I), "mlp.c_proj": ("c_proj", I, C)}
    C, H, Hkv, I = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"]
    D = cfg.get("head_dim") or C // H
    return {"self_attn.q_proj": ("q_proj", C, H * D), "self_attn.k_proj": ("k_proj", C, Hkv * D),
            "self_attn.v_proj": ("v_proj", C, Hkv * D), "self_attn.o_proj": ("o_proj", H * D, C),
            "mlp.gate_proj": ("gate_proj", C, I), "mlp.up_proj": ("up_proj", C, I), "mlp.down_proj": ("down_proj", I, C)}


def n_layers(family, cfg):
    return cfg["n_layer"] if family == "gpt2" else cfg["num_hidden_layers"]


def lora_modules(family, cfg, targets):
    prefix = "transformer.h." if family == "gpt2" else "model.layers."
    out = []
    for l in range(n_layers(family, cfg)):
        for suffix, (t, i, o) in module_shapes(family, cfg).items():
            if t in targets:
                out.append((f"{prefix}{l}.{suffix}", i, o))
    return out


def gpt2_config(n_embd, n_layer, n_head, vocab, n_positions):
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
            "attn_pdrop": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0, "bos_token_id": vocab - 1, "eos_token_id": vocab - 1,
            "initializer_range": 0.02, "layer_norm_epsilon": 1e-5, "n_ctx": n_positions, "n_embd": n_embd,
            "n_head": n_head, "n_inner": None, "n_layer": n_layer, "n_positions": n_positions,
            "scale_attn_weights": True, "tie_word_embeddings": True, "torch_dtype": "float32", "use_cache": True,
            "vocab_size": vocab, "transformers_version": "4.44.0"}


def llama_config(hidden, layers, heads, kv, inter, vocab, tied, max_pos=128):
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False, "attention_dropout": 0.0,
            "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": hidden, "initializer_range": 0.02,
            "intermediate_size": inter, "max_position_embeddings": max_pos, "mlp_bias": False, "num_attention_heads": heads,
            "num_hidden_layers": layers, "num_key_value_heads": kv, "pretraining_tp": 1, "rms_norm_eps": 1e-5,
            "rope_scaling": None, "rope_theta": 10000.0, "tie_word_embeddings": tied, "torch_dtype": "float32",
            "use_cache": True, "vocab_size": vocab, "transformers_version": "4.44.0"}


def qwen2_config(hidden, layers, heads, kv, inter, vocab):
    return {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "attention_dropout": 0.0, "bos_token_id": 1,
            "eos_token_id": 2, "hidden_act": "silu", "hidden_size": hidden, "initializer_range": 0.02,
            "intermediate_size": inter, "max_position_embeddings": 128, "max_window_layers": layers,
            "num_attention_heads": heads, "num_hidden_layers": layers, "num_key_value_heads": kv, "rms_norm_eps": 1e-6,
            "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": None, "tie_word_embeddings": False,
            "torch_dtype": "float32", "use_cache": True, "use_sliding_window": False, "vocab_size": vocab,
            "transformers_version": "4.44.0"}


def qwen3_config(hidden, layers, heads, kv, head_dim, inter, vocab, tied):
    return {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "attention_bias": False, "attention_dropout": 0.0,
            "bos_token_id": 1, "eos_token_id": 2, "head_dim": head_dim, "hidden_act": "silu", "hidden_size": hidden,
            "initializer_range": 0.02, "intermediate_size": inter, "max_position_embeddings": 128,
            "max_window_layers": layers, "num_attention_heads": heads, "num_hidden_layers": layers,
            "num_key_value_heads": kv, "rms_norm_eps": 1e-6, "rope_scaling": None, "rope_theta": 1000000.0,
            "sliding_window": None, "tie_word_embeddings": tied, "torch_dtype": "float32", "use_cache": True,
            "use_sliding_window": False, "vocab_size": vocab, "transformers_version": "4.51.0"}


def llama3_config(hidden, layers, heads, kv, head_dim, inter, vocab, tied, original_max):
    # Llama 3.2-style: rope_theta 500000 and rope_scaling llama3 (factor 32, low 1, high 4 as in Llama 3.2),
    # with a small original_max_position_embeddings so that T crosses both wavelength boundaries
    cfg = llama_config(hidden, layers, heads, kv, inter, vocab, tied, max_pos=4 * original_max)
    cfg.update({"head_dim": head_dim, "rope_theta": 500000.0, "bos_token_id": 1, "eos_token_id": [2, 3],
                "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                 "original_max_position_embeddings": original_max, "rope_type": "llama3"},
                "transformers_version": "4.45.0"})
    return cfg


def smollm3_config(hidden, layers, heads, kv, inter, vocab, no_rope_layers):
    return {"architectures": ["SmolLM3ForCausalLM"], "model_type": "smollm3", "attention_bias": False,
            "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": hidden,
            "initializer_range": 0.02, "intermediate_size": inter, "max_position_embeddings": 128, "mlp_bias": False,
            "no_rope_layer_interval": 4, "no_rope_layers": no_rope_layers, "num_attention_heads": heads,
            "num_hidden_layers": layers, "num_key_value_heads": kv, "rms_norm_eps": 1e-6, "rope_scaling": None,
            "rope_theta": 2000000.0, "sliding_window": None, "tie_word_embeddings": True, "torch_dtype": "float32",
            "use_cache": True, "use_sliding_window": False, "vocab_size": vocab, "transformers_version": "4.53.0"}


def gemma3_config(hidden, layers, heads, kv, head_dim, inter, vocab, tied, sliding_window, query_pre_attn_scalar,
                  layer_types=None, pattern=None, attn_cap=None, final_cap=None, rope_scaling=None):
    # Gemma3TextConfig as transformers 4.5x saves it (gemma-3-270m's fields); `pattern` instead of layer_types
    # gives the older sliding_window_pattern form (gemma-3-1b's config)
    cfg = {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "attention_bias": False,
           "attention_dropout": 0.0, "attn_logit_softcapping": attn_cap, "bos_token_id": 2, "eos_token_id": 1,
           "final_logit_softcapping": final_cap, "head_dim": head_dim, "hidden_activation": "gelu_pytorch_tanh",
           "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": inter, "max_position_embeddings": 128,
           "num_attention_heads": heads, "num_hidden_layers": layers, "num_key_value_heads": kv, "pad_token_id": 0,
           "query_pre_attn_scalar": query_pre_attn_scalar, "rms_norm_eps": 1e-6, "rope_local_base_freq": 10000.0,
           "rope_scaling": rope_scaling, "rope_theta": 1000000.0, "sliding_window": sliding_window,
           "tie_word_embeddings": tied, "torch_dtype": "float32", "use_bidirectional_attention": False,
           "use_cache": True, "vocab_size": vocab, "transformers_version": "4.55.0"}
    if layer_types is not None:
        cfg["layer_types"] = layer_types
    else:
        cfg["sliding_window_pattern"] = pattern
    return cfg
def mistral_config(hidden, layers, heads, kv, head_dim, inter, vocab, window):
    return {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "attention_dropout": 0.0,
            "bos_token_id": 1, "eos_token_id": 2, "head_dim": head_dim, "hidden_act": "silu", "hidden_size": hidden,
            "initializer_range": 0.02, "intermediate_size": inter, "max_position_embeddings": 128,
            "num_attention_heads": heads, "num_hidden_layers": layers, "num_key_value_heads": kv, "rms_norm_eps": 1e-5,
            "rope_theta": 1000000.0, "sliding_window": window, "tie_word_embeddings": False, "torch_dtype": "float32",
            "use_cache": True, "vocab_size": vocab, "transformers_version": "4.46.0"}


def random_weights(family, cfg, g):
    # std 0.2-0.3 so every block does visible work (0.02 would leave the residual stream nearly untouched)
    rn = lambda *shape, std=0.2: torch.randn(*shape, generator=g, dtype=DT) * std
    W = {}
    if family == "gpt2":
        C, V = cfg["n_embd"], cfg["vocab_size"]
        W["transformer.wte.weight"] = rn(V, C, std=0.5)
        W["transformer.wpe.weight"] = rn(cfg["n_positions"], C, std=0.3)
        for l in range(cfg["n_layer"]):
            p = f"transformer.h.{l}."
            for ln in ("ln_1", "ln_2"):
                W[p + ln + ".weight"] = 1.0 + rn(C, std=0.1)
                W[p + ln + ".bias"] = rn(C, std=0.1)
            for suffix, (_, i, o) in module_shapes(family, cfg).items():
                W[p + suffix + ".weight"] = rn(i, o, std=1.0 / math.sqrt(i))  # Conv1D: [in, out]
                W[p + suffix + ".bias"] = rn(o, std=0.1)
        W["transformer.ln_f.weight"] = 1.0 + rn(C, std=0.1)
        W["transformer.ln_f.bias"] = rn(C, std=0.1)
        return W
    C, V = cfg["hidden_size"], cfg["vocab_size"]
    W["model.embed_tokens.weight"] = rn(V, C, std=0.5)
    # Gemma stores its norm weights as w and uses 1 + w: around 0, not 1
    norm_w = (lambda n: rn(n, std=0.1)) if family == "gemma3" else (lambda n: 1.0 + rn(n, std=0.1))
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        norms = ["input_layernorm", "post_attention_layernorm"]
        if family == "gemma3":
            norms += ["pre_feedforward_layernorm", "post_feedforward_layernorm"]
        for n in norms:
            W[p + n + ".weight"] = norm_w(C)
        for suffix, (t, i, o) in module_shapes(family, cfg).items():
            W[p + suffix + ".weight"] = rn(o, i, std=1.0 / math.sqrt(i))  # nn.Linear: [out, in]
            if family == "qwen2" and t in ("q_proj", "k_proj", "v_proj"):
                W[p + suffix + ".bias"] = rn(o, std=0.1)
        if family in ("qwen3", "gemma3"):
            D = cfg["head_dim"]
            W[p + "self_attn.q_norm.weight"] = norm_w(D)
            W[p + "self_attn.k_norm.weight"] = norm_w(D)
    W["model.norm.weight"] = norm_w(C)
    if not cfg["tie_word_embeddings"]:
        W["lm_head.weight"] = rn(V, C, std=1.0 / math.sqrt(C))
    return W


# ----------------------------------------------------------------------------------------------
# the cases

ALL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

CASES = {
    "gpt2-tiny": dict(family="gpt2", config=gpt2_config(48, 2, 3, 97, 64), dtype="F32", B=2, T=11,
                      lora=dict(r=4, alpha=8, use_rslora=False, targets=["c_attn", "c_proj", "c_fc"]), seed=11),
    "llama-gqa-tied": dict(family="llama", config=llama_config(48, 2, 6, 2, 80, 101, True), dtype="F16", B=2, T=13,
                           lora=dict(r=3, alpha=6, use_rslora=False,
                                     targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]), seed=12),
    "llama-untied": dict(family="llama", config=llama_config(48, 2, 4, 4, 72, 89, False), dtype="BF16", B=3, T=7,
                         lora=dict(r=2, alpha=5, use_rslora=False, targets=["q_proj", "v_proj", "down_proj"]), seed=13),
    "qwen2-bias": dict(family="qwen2", config=qwen2_config(40, 2, 5, 1, 56, 103), dtype="F32", B=2, T=9,
                       lora=dict(r=4, alpha=8, use_rslora=True, targets=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"]), seed=14),
    # Qwen3: GQA, head_dim != hidden/heads (12 vs 10, 24 vs 16), q/k norms; tied and untied
    "qwen3-gqa-tied": dict(family="qwen3", config=qwen3_config(40, 2, 4, 2, 12, 56, 97, True), dtype="BF16", B=2, T=9,
                           lora=dict(r=3, alpha=6, use_rslora=False, targets=ALL_TARGETS), seed=16),
    "qwen3-untied": dict(family="qwen3", config=qwen3_config(32, 2, 2, 2, 24, 48, 89, False), dtype="F32", B=2, T=11,
                         lora=dict(r=4, alpha=8, use_rslora=True, targets=["q_proj", "k_proj", "o_proj", "down_proj"]), seed=17),
    # Llama 3.x rope_scaling llama3, original_max_position_embeddings 28 < T = 56: head_dim 32 gives wavelengths
    # 6.3 (< 28/4: kept), 14.3 (between: smoothed) and 32.4 and up (> 28: divided by the factor)
    "llama3-scaled": dict(family="llama", config=llama3_config(64, 2, 2, 1, 32, 96, 83, False, 28), dtype="F16", B=1, T=56,
                          lora=dict(r=2, alpha=4, use_rslora=False, targets=ALL_TARGETS), seed=18),
    # SmolLM3: NoPE in layers 1 and 2 of 3 (no_rope_layers 0), GQA 4/2, tied
    "smollm3-nope": dict(family="smollm3", config=smollm3_config(48, 3, 4, 2, 80, 101, [1, 0, 0]), dtype="F32", B=2, T=10,
                         lora=dict(r=4, alpha=8, use_rslora=False, targets=ALL_TARGETS), seed=19),
    # Gemma 3: GQA 4/2, head_dim 16 != 48/4, query_pre_attn_scalar 24 != head_dim, layer_types mixing sliding (window
    # 4 < T) and full layers, both soft caps at values the scores and logits reach, tied
    "gemma3-sliding-softcap": dict(family="gemma3", config=gemma3_config(
        48, 3, 4, 2, 16, 64, 101, True, 4, 24, layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        attn_cap=2.5, final_cap=5.0), dtype="BF16", B=2, T=11,
        lora=dict(r=3, alpha=6, use_rslora=False, targets=ALL_TARGETS), seed=20),
    # Gemma 3 as gemma-3-1b writes it: sliding_window_pattern (2: layers 0 and 2 slide), no soft caps, one kv head,
    # rope_scaling linear on the full layers only, head_dim 24 != 32/2; untied for coverage
    "gemma3-pattern-untied": dict(family="gemma3", config=gemma3_config(
        32, 3, 2, 1, 24, 48, 89, False, 5, 24, pattern=2, rope_scaling={"factor": 8.0, "rope_type": "linear"}),
        dtype="F32", B=2, T=13, lora=dict(r=4, alpha=8, use_rslora=True, targets=["q_proj", "v_proj", "down_proj"]),
        seed=21),
    # Gemma 3 as llama.cpp's gemma3 runs it (the GGUF fixtures of tools/gguf_write.py): no attention soft cap,
    # query_pre_attn_scalar = head_dim, a final soft cap the logits reach, layer_types of period 3 (layers 0 and 1
    # slide, window 3 < T), rope_local_base_freq 2e4 (not the default), hidden 64 so that every linear is whole
    # 32-blocks (Q8_0 / Q4_0), tied
    "gemma3-final-softcap": dict(family="gemma3", config=dict(gemma3_config(
        64, 3, 2, 1, 32, 96, 97, True, 3, 32, layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        final_cap=4.0), rope_local_base_freq=20000.0), dtype="F32", B=2, T=11,
        lora=dict(r=2, alpha=4, use_rslora=False, targets=ALL_TARGETS), seed=22),
    # Mistral: sliding_window 4 < T = 11 (positions 4.. lose their first keys), GQA 4/2, head_dim 10 != 48/4, untied
    "mistral-window": dict(family="mistral", config=mistral_config(48, 2, 4, 2, 10, 72, 89, 4), dtype="BF16", B=2, T=11,
                           lora=dict(r=3, alpha=6, use_rslora=False, targets=ALL_TARGETS), seed=20),
    # Qwen3 with use_sliding_window: max_window_layers 1 of 3, so layers 1 and 2 slide by 4 < T = 11 and layer 0
    # is full; GQA 4/2, head_dim 12 != 40/4, tied
    "qwen3-window": dict(family="qwen3", config=dict(qwen3_config(40, 3, 4, 2, 12, 56, 97, True),
                                                     use_sliding_window=True, sliding_window=4, max_window_layers=1),
                         dtype="BF16", B=2, T=11, lora=dict(r=3, alpha=6, use_rslora=False, targets=ALL_TARGETS), seed=22),
    # Qwen2 with use_sliding_window and explicit layer_types: layer 0 slides by 3 < T = 9, layer 1 is full (a
    # max_window_layers of 0 that would make both slide is overridden by layer_types); biases, GQA 5/1
    "qwen2-window": dict(family="qwen2", config=dict(qwen2_config(40, 2, 5, 1, 56, 103), use_sliding_window=True,
                                                     sliding_window=3, max_window_layers=0,
                                                     layer_types=["sliding_attention", "full_attention"]),
                         dtype="F32", B=2, T=9, lora=dict(r=4, alpha=8, use_rslora=True,
                                                          targets=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj"]), seed=23),
    "weblora-llama-1m": dict(family="llama", config=None, dtype=None, B=1, T=16,
                             lora=dict(r=4, alpha=8, use_rslora=False,
                                       targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]), seed=15),
}

# a fixed sentence for the bundled model's golden, tokenized by sentencepiece with the model's tokenizer.model
BUNDLED_TEXT = "Call me Ishmael. And the LORD said unto the hacker, Let there be"


def lora_scale(lc):
    return lc["alpha"] / (math.sqrt(lc["r"]) if lc["use_rslora"] else lc["r"])


def load_case_model(name):
    # -> family, cfg, W (float64, the values the loader will see), model folder
    c = CASES[name]
    if name == "weblora-llama-1m":
        cfg = json.load(open(os.path.join(BUNDLED, "config.json")))
        W = {k: v.to(DT) for k, v in load_safetensors(os.path.join(BUNDLED, "model.safetensors")).items()}
        return c["family"], cfg, W, BUNDLED
    g = torch.Generator().manual_seed(c["seed"])
    cfg = dict(c["config"], torch_dtype={"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[c["dtype"]])
    W = {k: round_to(v, c["dtype"]) for k, v in random_weights(c["family"], cfg, g).items()}
    out = os.path.join(FIXTURES, name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    save_safetensors(os.path.join(out, "model.safetensors"), W, {k: c["dtype"] for k in W})
    tok, tok_cfg = tiny_tokenizer(c["family"], cfg["vocab_size"])
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tok_cfg, f, indent=2)
    # the loader must see exactly the values we compute with
    back = load_safetensors(os.path.join(out, "model.safetensors"))
    assert all(torch.equal(back[k].to(DT), W[k]) for k in W)
    return c["family"], cfg, W, out


def tiny_tokenizer(family, V):
    # a character-level tokenizer.json with exactly V ids, so the fixture folder is a loadable HF model folder
    # (the golden itself works on ids). Llama/Qwen2: <unk>=0 <s>=1 </s>=2; GPT-2: <|endoftext|> = V-1.
    specials = {"gpt2": ["<|endoftext|>"], "gemma3": ["<pad>", "<eos>", "<bos>", "<unk>"]}.get(family, ["<unk>", "<s>", "</s>"])
    chars = [chr(c) for c in range(32, 127)] + [chr(c) for c in range(0xA1, 0x17F)]
    chars = chars[:V - len(specials)]
    pieces = chars + specials if family == "gpt2" else specials + chars
    vocab = {p: i for i, p in enumerate(pieces)}
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in specials]
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
           "pre_tokenizer": None, "post_processor": None, "decoder": {"type": "Fuse"},
           "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>" if "<unk>" in specials else specials[0], "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": False, "ignore_merges": False,
                     "vocab": vocab, "merges": []}}
    if family == "gemma3":  # Gemma's ids: <pad> 0, <eos> 1, <bos> 2, <unk> 3
        cfg = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>", "add_bos_token": True,
               "add_eos_token": False, "model_max_length": 128, "clean_up_tokenization_spaces": False}
    elif family == "gpt2":
        cfg = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "add_bos_token": False, "model_max_length": 64, "clean_up_tokenization_spaces": False}
    else:
        cfg = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
               "add_eos_token": False, "model_max_length": 128, "clean_up_tokenization_spaces": False}
    return tok, cfg


def bundled_ids(B, T):
    try:
        import sentencepiece  # noqa: F401
        sp_model = os.path.join(BUNDLED, "tokenizer.model")
        if os.path.exists(sp_model):
            sp = sentencepiece.SentencePieceProcessor(model_file=sp_model)
            ids = [1] + sp.encode(BUNDLED_TEXT)
            assert len(ids) >= T + 1
            return torch.tensor([ids[:T]] * B), torch.tensor([ids[1:T + 1]] * B)
    except ImportError:
        pass
    raise SystemExit("weblora-llama-1m golden needs python3-sentencepiece and public/models/weblora-llama-1m/tokenizer.model")


def golden_case(name):
    c = CASES[name]
    family, cfg, W, _ = load_case_model(name)
    B, T, lc = c["B"], c["T"], c["lora"]
    V = cfg["vocab_size"]
    g = torch.Generator().manual_seed(1000 + c["seed"])
    if name == "weblora-llama-1m":
        ids, labels = bundled_ids(B, T)
    else:
        ids = torch.randint(0, V, (B, T + 1), generator=g)
        ids, labels = ids[:, :T].clone(), ids[:, 1:].clone()
    labels[0, 0] = -100  # a few ignored targets (prompt-masking / padding)
    labels[-1, -2:] = -100
    s = lora_scale(lc)
    mods = lora_modules(family, cfg, lc["targets"])
    lora = {}
    for path, i, o in mods:
        A = (torch.randn(lc["r"], i, generator=g, dtype=DT) / math.sqrt(i)).requires_grad_()
        Bm = (torch.randn(o, lc["r"], generator=g, dtype=DT) * 0.2).requires_grad_()  # nonzero, so dA != 0
        lora[path] = (A, Bm)
    C = W["transformer.wte.weight" if family == "gpt2" else "model.embed_tokens.weight"].shape[1]
    x0 = embed(family, W, ids).requires_grad_()  # a leaf, so dLoss/dhidden.0 exists
    logits, hidden = forward(family, W, cfg, ids, lora, s, x0=x0)
    loss = cross_entropy(logits, labels)
    params = [p for path, _, _ in mods for p in lora[path]]
    grads = torch.autograd.grad(loss, hidden + params)
    dh, dp = grads[:len(hidden)], grads[len(hidden):]
    out = {"input_ids": ids.to(torch.int32), "labels": labels.to(torch.int32), "logits": logits.detach(),
           "loss": loss.detach().reshape(1)}
    for i, (h, d) in enumerate(zip(hidden, dh)):
        out[f"hidden.{i}"] = h.detach()
        out[f"dhidden.{i}"] = d
    if (cfg.get("rope_scaling") or {}).get("rope_type") == "llama3":
        out["rope_inv_freq_hf_f32"] = hf_llama3_inv_freq_f32(cfg, cfg.get("head_dim") or C // cfg["num_attention_heads"])
    for k, (path, _, _) in enumerate(mods):
        out[f"lora.{path}.A"], out[f"lora.{path}.B"] = lora[path][0].detach(), lora[path][1].detach()
        out[f"grad.{path}.A"], out[f"grad.{path}.B"] = dp[2 * k], dp[2 * k + 1]
        assert dp[2 * k].abs().max() > 0 and dp[2 * k + 1].abs().max() > 0
    d = os.path.join(FIXTURES, name)
    os.makedirs(d, exist_ok=True)
    save_safetensors(os.path.join(d, "golden.safetensors"), out)
    meta = {"family": family, "case": name, "B": B, "T": T, "lora": dict(lc, scale=s),
            "modules": [p for p, _, _ in mods], "loss": loss.item(), "hidden_size": C,
            "weights_dtype": c["dtype"] or "F32",
            "notes": ("tools/golden.py, torch float64, own model code. labels are already shifted (labels[b,t] is the "
                      "target of position t, -100 ignored); loss = mean CE over non-ignored positions. hidden.i is the "
                      "input of block i, dhidden.i = dLoss/dhidden.i. LoRA: h = W0 x + scale * B (A x), A (r,in), "
                      "B (out,r), PEFT shapes also for GPT-2 Conv1D. The golden uses the weights exactly as stored "
                      "(rounded to " + (c["dtype"] or "F32") + "). All tensors stored F32 (ids I32).")}
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: loss {loss.item():.6f}, {len(mods)} LoRA modules, {os.path.getsize(os.path.join(d, 'golden.safetensors'))/1e3:.0f} kB")


# ----------------------------------------------------------------------------------------------
# training-curve fixture: 30 steps of PEFT-style LoRA training with torch.optim.AdamW


def train_lrs(steps, peak, warmup=5, floor=0.1):
    lrs = []
    for i in range(steps):
        if i < warmup:
            lrs.append(peak * (i + 1) / warmup)
        else:
            p = (i - warmup) / max(1, steps - 1 - warmup)
            lrs.append(peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))))
    return lrs


def train_batches(name, cfg, steps, B, T, g):
    V = cfg["vocab_size"]
    if name == "weblora-llama-1m":
        # fine-tuning-like data: fortunes (never seen in pretraining), BOS-separated
        import sentencepiece
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from pretrain import load_fortunes
        sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(BUNDLED, "tokenizer.model"))
        fort = load_fortunes()
        order = torch.randperm(len(fort), generator=g)[:400].tolist()
        stream = []
        for i in order:
            stream += [1] + sp.encode(fort[i])
        stream = torch.tensor(stream)
        starts = torch.randint(0, len(stream) - T - 1, (steps, B), generator=g)
        x = torch.stack([torch.stack([stream[s:s + T] for s in row]) for row in starts])
        y = torch.stack([torch.stack([stream[s + 1:s + T + 1] for s in row]) for row in starts])
    else:
        # a learnable toy language: token t+1 follows t (mod V) most of the time
        x = torch.zeros(steps, B, T + 1, dtype=torch.long)
        x[:, :, 0] = torch.randint(0, V, (steps, B), generator=g)
        for t in range(1, T + 1):
            jump = torch.rand(steps, B, generator=g) < 0.1
            x[:, :, t] = torch.where(jump, torch.randint(0, V, (steps, B), generator=g), (x[:, :, t - 1] + 1) % V)
        x, y = x[:, :, :T].clone(), x[:, :, 1:].clone()
    y[:, 0, :3] = -100  # masked prompt tokens in the first sequence of every batch
    return x, y


def train_case(name, steps=30, B=2, T=32, r=4, alpha=8, peak_lr=1e-2, wd=0.01, max_norm=1.0):
    family, cfg, W, _ = load_case_model(name)
    targets = ["c_attn"] if family == "gpt2" else ["q_proj", "v_proj"]
    s = alpha / r
    g = torch.Generator().manual_seed(4242)
    mods = lora_modules(family, cfg, targets)
    lora = {}
    for path, i, o in mods:
        bound = 1.0 / math.sqrt(i)  # PEFT: kaiming_uniform_(a=sqrt(5)) on (r, in) = U(-1/sqrt(in), 1/sqrt(in))
        A = ((torch.rand(r, i, generator=g, dtype=DT) * 2 - 1) * bound).requires_grad_()
        Bm = torch.zeros(o, r, dtype=DT, requires_grad=True)
        lora[path] = (A, Bm)
    out = {}
    for path, _, _ in mods:
        out[f"init.{path}.A"], out[f"init.{path}.B"] = lora[path][0].detach().clone(), lora[path][1].detach().clone()
    x, y = train_batches(name, cfg, steps, B, T, g)
    params = [p for path, _, _ in mods for p in lora[path]]
    opt = torch.optim.AdamW(params, lr=peak_lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    lrs = train_lrs(steps, peak_lr)
    losses, norms = [], []
    for i in range(steps):
        for grp in opt.param_groups:
            grp["lr"] = lrs[i]
        logits, _ = forward(family, W, cfg, x[i], lora, s)
        loss = cross_entropy(logits, y[i])
        opt.zero_grad()
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(params, max_norm).item())
        opt.step()
        losses.append(loss.item())
    for path, _, _ in mods:
        out[f"final.{path}.A"], out[f"final.{path}.B"] = lora[path][0].detach(), lora[path][1].detach()
    out["batches.input_ids"] = x.to(torch.int32)
    out["batches.labels"] = y.to(torch.int32)
    out["losses"] = torch.tensor(losses)
    out["grad_norms"] = torch.tensor(norms)
    out["lrs"] = torch.tensor(lrs)
    d = os.path.join(FIXTURES, name)
    save_safetensors(os.path.join(d, "train_golden.safetensors"), out)
    meta = {"family": family, "case": name, "steps": steps, "B": B, "T": T,
            "lora": {"r": r, "alpha": alpha, "use_rslora": False, "scale": s, "targets": targets, "dropout": 0.0,
                     "init": "A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT kaiming_uniform a=sqrt(5)), B = 0"},
            "modules": [p for p, _, _ in mods],
            "optimizer": {"type": "torch.optim.AdamW", "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": wd,
                          "lr_peak": peak_lr, "schedule": "linear warmup 5 steps (lr*(i+1)/5), then cosine to 10% at the last step",
                          "clip_grad_norm": max_norm, "weight_decay_applies_to": "both A and B (decoupled: p -= lr*wd*p)"},
            "losses": losses, "grad_norms": norms, "lrs": lrs,
            "notes": ("tools/golden.py, float64. Step i: set lr=lrs[i]; loss = mean CE of batches[i] (labels already shifted, "
                      "-100 ignored); backward; grad_norms[i] = global L2 norm of all LoRA grads BEFORE clipping; clip to 1.0; "
                      "AdamW step. losses[i] is the loss before step i's update. Step 0 has dA = 0 because B = 0.")}
    with open(os.path.join(d, "train_golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name} train: loss {losses[0]:.4f} -> {losses[-1]:.4f}, grad norms {norms[0]:.3f} .. {norms[-1]:.3f}")


# ----------------------------------------------------------------------------------------------
# self-checks of the oracle itself


def selfcheck():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(99)
    # 1. RoPE against the per-pair rotation formula (pairs (i, i + D/2), as in shaders/rope.wgsl) / HF rotate_half
    x = torch.randn(1, 2, 5, 8, dtype=DT, generator=g)
    want = torch.empty_like(x)
    D, half = 8, 4
    for t in range(5):
        for i in range(half):
            a = t * 10000.0 ** (-2 * i / D)
            x1, x2 = x[..., t, i], x[..., t, i + half]
            want[..., t, i] = x1 * math.cos(a) - x2 * math.sin(a)
            want[..., t, i + half] = x2 * math.cos(a) + x1 * math.sin(a)
    got = rope(x, plain_inv(10000.0, 8))
    assert torch.allclose(got, want, atol=1e-12), "rope"
    # HF form: q*cos + rotate_half(q)*sin with cos/sin = cat(freqs, freqs)
    inv = 1.0 / (10000.0 ** (torch.arange(0, D, 2, dtype=DT) / D))
    emb = torch.cat([torch.outer(torch.arange(5, dtype=DT), inv)] * 2, -1)
    rot_half = torch.cat([-x[..., half:], x[..., :half]], -1)
    assert torch.allclose(x * emb.cos() + rot_half * emb.sin(), got, atol=1e-12), "rope vs HF rotate_half"
    # relative-position property: <rope(q)_t, rope(k)_u> depends on t - u only
    q1 = torch.randn(8, dtype=DT, generator=g)
    k1 = torch.randn(8, dtype=DT, generator=g)
    qs = rope(q1.expand(1, 1, 6, 8).clone(), plain_inv(10000.0, 8))[0, 0]
    ks = rope(k1.expand(1, 1, 6, 8).clone(), plain_inv(10000.0, 8))[0, 0]
    assert abs(qs[4] @ ks[2] - qs[3] @ ks[1]) < 1e-12

    # 1b. llama3 inverse frequencies: this file's float64 maths against transformers' code run in float32, on a
    # config whose head_dim spans all three wavelength bands
    cfg3 = llama3_config(64, 1, 2, 1, 32, 8, 8, False, 28)
    a, b = rope_inv_freq(cfg3, 32), hf_llama3_inv_freq_f32(cfg3, 32).to(DT)
    assert torch.allclose(a, b, rtol=1e-6, atol=0), "llama3 inv_freq"
    assert (a == plain_inv(500000.0, 32)).any() and (a < plain_inv(500000.0, 32) / 31).any(), "llama3 bands"

    # 2. GPT-2 Conv1D layout: [in, out] weight, h = x W + b; the PEFT merge is W + s (B A)^T
    xin = torch.randn(7, 6, dtype=DT, generator=g)
    W0 = torch.randn(6, 9, dtype=DT, generator=g)
    b0 = torch.randn(9, dtype=DT, generator=g)
    A = torch.randn(2, 6, dtype=DT, generator=g)
    Bm = torch.randn(9, 2, dtype=DT, generator=g)
    got = lora_linear(xin, W0, b0, "m", {"m": (A, Bm)}, 1.5, conv1d=True)
    assert torch.allclose(got, torch.nn.functional.linear(xin, (W0 + 1.5 * (Bm @ A).t()).t(), b0), atol=1e-12), "conv1d"
    assert torch.allclose(lora_linear(xin, W0.t().contiguous(), b0, "m", {"m": (A, Bm)}, 1.5), got, atol=1e-12), "linear vs conv1d"

    # 3. LoRA backward formulas of docs/lora.md against autograd
    A.requires_grad_()
    Bm.requires_grad_()
    xin.requires_grad_()
    dY = torch.randn(7, 9, dtype=DT, generator=g)
    y = lora_linear(xin, W0.t().contiguous(), None, "m", {"m": (A, Bm)}, 1.5)
    dA, dB, dX = torch.autograd.grad(y, [A, Bm, xin], dY)
    U, G = xin @ A.t(), dY @ Bm
    assert torch.allclose(dB, 1.5 * dY.t() @ U) and torch.allclose(dA, 1.5 * G.t() @ xin)
    assert torch.allclose(dX, dY @ W0.t() + 1.5 * G @ A), "lora backward formulas"

    # 4. GQA mapping: query head h reads kv head h // group (HF repeat_kv)
    q = torch.randn(1, 4, 3, 2, dtype=DT, generator=g)
    k = torch.randn(1, 2, 3, 2, dtype=DT, generator=g)
    v = torch.randn(1, 2, 3, 2, dtype=DT, generator=g)
    full = causal_attention(q, k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1))
    assert torch.allclose(causal_attention(q, k, v), full)
    assert torch.allclose(causal_attention(q[:, 1:2], k[:, 0:1], v[:, 0:1]), full[:, 1:2])
    # causality: changing the last token changes no earlier output
    k2, v2 = k.clone(), v.clone()
    k2[:, :, -1] += 1
    v2[:, :, -1] += 1
    assert torch.allclose(causal_attention(q, k2, v2)[:, :, :-1], causal_attention(q, k, v)[:, :, :-1])

    # 4b. the sliding window and the soft cap: a window past T is none; window 1 sees only itself (o = v); a huge
    # cap is none; Gemma's norm is the plain RMSNorm with weight 1 + w
    q = torch.randn(1, 2, 6, 3, dtype=DT, generator=g)
    k = torch.randn(1, 2, 6, 3, dtype=DT, generator=g)
    v = torch.randn(1, 2, 6, 3, dtype=DT, generator=g)
    assert torch.equal(causal_attention(q, k, v, window=6), causal_attention(q, k, v))
    assert torch.allclose(causal_attention(q, k, v, window=1), v, atol=1e-15)
    assert torch.allclose(causal_attention(q, k, v, softcap=1e9), causal_attention(q, k, v), atol=1e-12)
    assert not torch.allclose(causal_attention(q, k, v, window=3), causal_attention(q, k, v))
    # window 3 by hand: row 4 sees keys 2, 3, 4 only
    s34 = (q[0, 0, 4] @ k[0, 0, 2:5].t()) / math.sqrt(3)
    assert torch.allclose(causal_attention(q, k, v, window=3)[0, 0, 4], torch.softmax(s34, -1) @ v[0, 0, 2:5])
    w = torch.randn(3, dtype=DT, generator=g)
    assert torch.allclose(gemma_rms_norm(q, w, 1e-6), rms_norm(q, 1.0 + w, 1e-6))
    # 4c. Qwen2/Qwen3 sliding layers: off unless use_sliding_window; from max_window_layers on (absent window:
    # 4096); layer_types overrides; Mistral slides everywhere
    q3 = qwen3_config(8, 3, 2, 1, 6, 6, 9, False)
    assert llama_windows(q3) == [0, 0, 0]
    assert llama_windows(dict(q3, max_window_layers=0, sliding_window=5)) == [0, 0, 0]
    assert llama_windows(dict(q3, use_sliding_window=True, sliding_window=5, max_window_layers=1)) == [0, 5, 5]
    assert llama_windows(dict({k: v for k, v in q3.items() if k != "sliding_window"}, use_sliding_window=True,
                              max_window_layers=2)) == [0, 0, 4096]
    assert llama_windows(dict(q3, use_sliding_window=True, sliding_window=None, max_window_layers=0)) == [0, 0, 0]
    lt = ["full_attention", "sliding_attention", "full_attention"]
    assert llama_windows(dict(q3, use_sliding_window=True, sliding_window=5, max_window_layers=0, layer_types=lt)) == [0, 5, 0]
    assert llama_windows(mistral_config(8, 2, 2, 1, 6, 6, 9, 3)) == [3, 3]

    # 5. gradcheck, every family: loss w.r.t. LoRA A, B and the block-0 input, float64
    tiny = {
        "gpt2": gpt2_config(12, 2, 3, 11, 8),
        "llama": llama_config(12, 2, 3, 1, 10, 13, True),
        "qwen2": qwen2_config(8, 2, 2, 1, 6, 9),
        "qwen3": qwen3_config(8, 2, 2, 1, 6, 6, 9, False),
        "smollm3": smollm3_config(8, 2, 2, 1, 6, 9, [0, 1]),
        "gemma3": gemma3_config(8, 2, 2, 1, 6, 6, 9, True, 2, 5, layer_types=["sliding_attention", "full_attention"],
                                attn_cap=1.0, final_cap=2.0),
        "mistral": mistral_config(8, 2, 2, 1, 6, 6, 9, 2),
    }
    for family, cfg in tiny.items():
        W = random_weights(family, cfg, g)
        ids = torch.randint(0, cfg["vocab_size"], (2, 5), generator=g)
        labels = torch.randint(0, cfg["vocab_size"], (2, 5), generator=g)
        labels[0, 1] = -100
        targets = module_shapes(family, cfg)
        mods = lora_modules(family, cfg, [t for t, _, _ in targets.values()])
        base = {p: (torch.randn(2, i, dtype=DT, generator=g), torch.randn(o, 2, dtype=DT, generator=g)) for p, i, o in mods}
        x0 = forward(family, W, cfg, ids, {}, 0.0)[1][0].detach()
        # check a subset of modules at a time to keep gradcheck quick; always include the block-0 input
        for chunk in (mods[:3], mods[3:7], mods[7:]):
            names = [p for p, _, _ in chunk]

            def f(x0_, *ab):
                lora = dict(base)
                for j, n in enumerate(names):
                    lora[n] = (ab[2 * j], ab[2 * j + 1])
                return cross_entropy(forward(family, W, cfg, ids, lora, 1.7, x0=x0_)[0], labels)

            inputs = [x0.clone().requires_grad_()] + [t.clone().requires_grad_() for n in names for t in base[n]]
            assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5), family
        print(f"gradcheck {family}: ok ({len(mods)} LoRA modules + block input)")
    # 6. safetensors round trip for every dtype we write
    t = torch.randn(3, 5, dtype=DT, generator=g)
    for dt in ("F32", "F16", "BF16"):
        save_safetensors("/tmp/golden_selfcheck.safetensors", {"t": t}, {"t": dt})
        assert torch.equal(load_safetensors("/tmp/golden_selfcheck.safetensors")["t"].to(DT), round_to(t, dt)), dt
    print("selfcheck: rope, conv1d layout, LoRA backward formulas, GQA, causality, gradcheck, safetensors: all ok")


def main():
    torch.set_num_threads(1)
    cmd = sys.argv[1] if len(sys.argv) > 1 else "all"
    names = sys.argv[2:] or list(CASES)
    if cmd in ("selfcheck", "all"):
        selfcheck()
    if cmd in ("golden", "all"):
        for n in names:
            golden_case(n)
    if cmd in ("train", "all"):
        for n in (sys.argv[2:] or ["gpt2-tiny", "weblora-llama-1m", "qwen3-gqa-tied", "gemma3-sliding-softcap"]):
            train_case(n)


if __name__ == "__main__":
    main()
