"""Checks a PEFT LoRA adapter EXPORTED BY WEBLORA against an independent PyTorch model (float64).

  /usr/bin/python3 tools/check_peft.py <adapter folder or .zip> <base model folder> <expected.json>

expected.json (written by tests/adapters/peft-export.test.ts) holds the token ids ("ids", B rows of T)
and the logits WebLoRA computed for them with the adapter ("logits", B·T·V numbers, row-major). This
script reads the adapter and the base model with its own safetensors reader, applies the LoRA as PEFT
does (h = W0·x + b + s·B·(A·x), s = lora_alpha/r, or lora_alpha/sqrt(r) with use_rslora; with
fan_in_fan_out (GPT-2 Conv1D) W0 is stored [in, out] while lora_A/lora_B keep their [r, in]/[out, r]
shapes), computes the logits itself and prints the largest difference. Exit status 1 if it exceeds
    1e-4 · max|logit| + 1e-5
(WebLoRA computes in f32: its logits differ from float64 by ~1e-6 relative on these small models).

Model code is written here from Hugging Face's LlamaForCausalLM (with Llama 3.x rope_scaling llama3 and
linear), Qwen2ForCausalLM, Qwen3ForCausalLM (per-head q/k RMSNorm, head_dim), SmolLM3ForCausalLM (no_rope_layers),
MistralForCausalLM (sliding_window), Qwen2/Qwen3 sliding layers (use_sliding_window), Gemma3ForCausalLM (four x·(1 + w) norms, GeGLU, sliding and full layers,
soft caps) and GPT2LMHeadModel, deliberately without importing tools/golden.py. tools/make_peft_fixture.py imports the pieces below.
Run with Debian's /usr/bin/python3 (it has torch).
"""
import hashlib
import io
import json
import math
import os
import struct
import sys
import zipfile

import numpy as np
import torch

torch.set_num_threads(1)
DT = torch.float64
REL, ABS = 1e-4, 1e-5

# ----------------------------------------------------------------------------------------------
# safetensors, by hand: 8-byte little-endian header length, JSON header, raw little-endian data

NP_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64}


def read_safetensors(data):
    """bytes -> (tensors: name -> float64/int64 torch tensor, metadata dict)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        dt = info["dtype"]
        if dt == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32).astype(np.float64)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(NP_DTYPES[dt]).newbyteorder("<"))
            arr = arr.astype(np.int64 if dt.startswith("I") else np.float64)
        out[name] = torch.from_numpy(arr.copy()).reshape(info["shape"])
    return out, meta


def write_safetensors(path, tensors, dtypes, metadata):
    """tensors: name -> numpy array; dtypes: name -> 'F32' | 'I32'. Laid out as the safetensors library
    does: __metadata__ first, tensors in name order (all 4-byte types here), header padded with spaces to 8."""
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        b = np.ascontiguousarray(tensors[name]).astype(np.dtype(NP_DTYPES[dtypes[name]]).newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtypes[name], "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_model_folder(folder):
    """(config dict, weights name -> float64 tensor) of a Hugging Face model folder (one file or shards)."""
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    files = ["model.safetensors"]
    idx = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    W = {}
    for fn in files:
        with open(os.path.join(folder, fn), "rb") as f:
            W.update(read_safetensors(f.read())[0])
    if cfg["model_type"] == "gpt2":  # some GPT-2 checkpoints omit the "transformer." prefix
        W = {(k if k.startswith("transformer.") or k.startswith("lm_head.") else "transformer." + k): v for k, v in W.items()}
    return cfg, W


def read_adapter(path):
    """(adapter_config dict, adapter_model.safetensors bytes) from a folder or a zip (root or one folder)."""
    if os.path.isdir(path):
        with open(os.path.join(path, "adapter_config.json")) as f:
            cfg_text = f.read()
        with open(os.path.join(path, "adapter_model.safetensors"), "rb") as f:
            st = f.read()
    else:
        with zipfile.ZipFile(path) as z:
            names = {os.path.basename(n): n for n in z.namelist()}
            cfg_text = z.read(names["adapter_config.json"]).decode("utf-8")
            st = z.read(names["adapter_model.safetensors"])
    return json.loads(cfg_text), st


def adapter_lora(pc, st_bytes):
    """PEFT tensors -> {module path: (A [r, in], B [out, r])} and the scale s."""
    if pc.get("peft_type") != "LORA":
        raise SystemExit(f"not a LoRA adapter: peft_type {pc.get('peft_type')!r}")
    if pc.get("use_dora") or pc.get("bias", "none") != "none" or pc.get("modules_to_save"):
        raise SystemExit("adapter uses DoRA, bias or modules_to_save: not what WebLoRA exports")
    tensors, meta = read_safetensors(st_bytes)
    if meta.get("format") != "pt":
        raise SystemExit(f"adapter_model.safetensors metadata is {meta!r}, PEFT writes {{'format': 'pt'}}")
    lora = {}
    pre = "base_model.model."
    for name, t in tensors.items():
        assert name.startswith(pre) and (name.endswith(".lora_A.weight") or name.endswith(".lora_B.weight")), name
        path, which = name[len(pre):-len(".lora_A.weight")], name[-8]
        lora.setdefault(path, {})[which] = t
    r, alpha = pc["r"], pc["lora_alpha"]
    s = alpha / math.sqrt(r) if pc.get("use_rslora") else alpha / r
    for path, ab in lora.items():
        assert ab["A"].shape[0] == r and ab["B"].shape[1] == r, f"{path}: rank differs from r = {r}"
    return {p: (ab["A"], ab["B"]) for p, ab in lora.items()}, s


# ----------------------------------------------------------------------------------------------
# the models, float64, over HF tensor names; `lora` maps a module path to (A, B), `s` is the scale


def linear(W, path, x, lora, s, fan_in_fan_out):
    """x (N, in) -> (N, out). fan_in_fan_out: W0 is stored [in, out] (GPT-2 Conv1D)."""
    w0 = W[path + ".weight"]
    y = x @ w0 if fan_in_fan_out else x @ w0.T
    if path + ".bias" in W:
        y = y + W[path + ".bias"]
    if path in lora:
        A, B = lora[path]
        y = y + s * ((x @ A.T) @ B.T)  # PEFT: lora_B(lora_A(dropout(x))) * scaling; dropout is off in eval
    return y


def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def attention(q, k, v, window=None, scale=None, softcap=None):
    """q (B, H, T, D), k/v (B, Hkv, T, D): causal softmax attention, kv heads repeated for GQA. With a sliding
    window (Mistral, Gemma 3's sliding layers), query t attends to keys u with t - window < u <= t. scale
    defaults to 1/sqrt(D); softcap (Gemma 3's attn_logit_softcapping) maps scores s to cap·tanh(s/cap)."""
    rep = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(rep, dim=1)
    v = v.repeat_interleave(rep, dim=1)
    T = q.shape[2]
    att = (q @ k.transpose(-1, -2)) * (scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    if softcap:
        att = softcap * torch.tanh(att / softcap)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    if window is not None:
        mask |= torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-window)
    att = att.masked_fill(mask, float("-inf")).softmax(-1)
    return att @ v


def inv_freq(cfg, D):
    """RoPE inverse frequencies 1 / theta^(2i/D), rescaled as rope_scaling (or rope_parameters) says, in float64:
    linear divides all by factor; llama3 keeps wavelengths below original_max/high_freq_factor, divides those
    above original_max/low_freq_factor by factor, and blends linearly in between (transformers'
    _compute_llama3_parameters)."""
    sc = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    theta = sc.get("rope_theta", cfg.get("rope_theta", 10000.0))
    inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=DT) / D))
    kind = sc.get("rope_type", sc.get("type", "default"))
    if kind == "default":
        return inv
    if kind == "linear":
        return inv / sc["factor"]
    if kind != "llama3":
        raise SystemExit(f"rope_type {kind!r} is not handled by this checker")
    factor, lo, hi, old = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"], sc["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    smooth = (old / wavelen - lo) / (hi - lo)
    blended = (1 - smooth) * inv / factor + smooth * inv
    return torch.where(wavelen < old / hi, inv, torch.where(wavelen > old / lo, inv / factor, blended))


def rotary(x, inv):
    """HF's rotate_half RoPE on x (B, H, T, D), positions 0..T-1, inverse frequencies inv (D/2)."""
    D, T = x.shape[-1], x.shape[2]
    ang = torch.arange(T, dtype=DT)[:, None] * inv[None, :]
    emb = torch.cat([ang, ang], -1)
    half = torch.cat([-x[..., D // 2:], x[..., :D // 2]], -1)
    return x * emb.cos() + half * emb.sin()


# per model_type: tie_word_embeddings when the config omits it (the <Family>Config defaults)
TIED_DEFAULT = {"llama": False, "qwen2": False, "qwen3": False, "smollm3": True, "mistral": False}


def sliding_windows(cfg, L):
    """Per layer, the attention window (None: full causal). Mistral: sliding_window on every layer. Qwen2 and Qwen3
    (their configs' __post_init__): sliding_window only with use_sliding_window (absent: 4096); layer_types, else
    "sliding_attention" for layers from max_window_layers (absent: 28) on when there is a window."""
    kind = cfg["model_type"]
    if kind == "mistral":
        return [cfg["sliding_window"] if "sliding_window" in cfg else 4096] * L
    if kind in ("qwen2", "qwen3"):
        sw = cfg.get("sliding_window", 4096) if cfg.get("use_sliding_window") else None
        types = cfg.get("layer_types") or [
            "sliding_attention" if sw is not None and i >= cfg.get("max_window_layers", 28) else "full_attention"
            for i in range(L)
        ]
        if sw is None and "sliding_attention" in types:
            raise SystemExit("layer_types has sliding layers but there is no sliding window (transformers refuses it too)")
        return [sw if t == "sliding_attention" else None for t in types]
    if kind == "smollm3" and cfg.get("use_sliding_window"):
        raise SystemExit("SmolLM3's sliding layers are not handled by this checker")
    return [None] * L


def llama_logits(cfg, W, ids, lora, s):
    """Llama and the Llama-shaped families: Qwen2 (q/k/v biases, read from W), Qwen3 (q_norm and k_norm: RMSNorm
    of each head's q and k over head_dim, before RoPE), SmolLM3 (no RoPE in layers whose no_rope_layers entry is
    0; absent: every no_rope_layer_interval-th), Mistral (sliding_window on every layer; null: none, absent: 4096)."""
    B, T = ids.shape
    L, C, H = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads") or H
    D = cfg.get("head_dim") or C // H
    eps, kind = cfg["rms_norm_eps"], cfg["model_type"]
    inv = inv_freq(cfg, D)
    if kind == "smollm3":
        every = cfg.get("no_rope_layer_interval", 4)
        uses_rope = cfg.get("no_rope_layers") or [int((i + 1) % every != 0) for i in range(L)]
    else:
        uses_rope = [1] * L
    windows = sliding_windows(cfg, L)
    x = W["model.embed_tokens.weight"][ids.reshape(-1)]
    for i in range(L):
        p = f"model.layers.{i}"
        lin = lambda name, v: linear(W, f"{p}.{name}", v, lora, s, False)
        n1 = rms_norm(x, W[f"{p}.input_layernorm.weight"], eps)
        q = lin("self_attn.q_proj", n1).view(B, T, H, D)
        k = lin("self_attn.k_proj", n1).view(B, T, Hkv, D)
        v = lin("self_attn.v_proj", n1).view(B, T, Hkv, D).transpose(1, 2)
        if kind == "qwen3":
            q = rms_norm(q, W[f"{p}.self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[f"{p}.self_attn.k_norm.weight"], eps)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        if uses_rope[i]:
            q, k = rotary(q, inv), rotary(k, inv)
        a = attention(q, k, v, windows[i]).transpose(1, 2).reshape(B * T, H * D)
        x = x + lin("self_attn.o_proj", a)
        n2 = rms_norm(x, W[f"{p}.post_attention_layernorm.weight"], eps)
        g = lin("mlp.gate_proj", n2)
        x = x + lin("mlp.down_proj", g * torch.sigmoid(g) * lin("mlp.up_proj", n2))
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", TIED_DEFAULT[kind]) else W["lm_head.weight"]
    return (x @ head.T).view(B, T, -1)


def gemma3_logits(cfg, W, ids, lora, s):
    """Gemma 3 text (Gemma3ForCausalLM): RMSNorm as x·(1 + w); embeddings × sqrt(hidden); four norms a layer
    (input, post_attention, pre_feedforward, post_feedforward) with the residual added after the post norms;
    q_norm/k_norm per head before RoPE; scores scaled by query_pre_attn_scalar^-1/2 and soft-capped when
    attn_logit_softcapping is set; layer_types (or every sliding_window_pattern-th layer full) pick sliding
    layers, which use sliding_window and an unscaled RoPE of rope_local_base_freq, while full layers use
    rope_theta with rope_scaling; GeGLU with tanh GELU; final_logit_softcapping on the logits."""
    B, T = ids.shape
    L, C, H = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads") or H
    D = cfg.get("head_dim") or 256
    eps = cfg["rms_norm_eps"]
    norm = lambda x, w: x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * (1 + w)
    gelu = lambda f: 0.5 * f * (1 + torch.tanh(math.sqrt(2 / math.pi) * (f + 0.044715 * f ** 3)))
    types = cfg.get("layer_types") or [
        "full_attention" if (i + 1) % cfg.get("sliding_window_pattern", 6) == 0 else "sliding_attention" for i in range(L)
    ]
    inv_full = inv_freq(cfg, D)
    inv_local = 1.0 / (cfg.get("rope_local_base_freq", 10000.0) ** (torch.arange(0, D, 2, dtype=DT) / D))
    scale = cfg.get("query_pre_attn_scalar", D) ** -0.5
    x = W["model.embed_tokens.weight"][ids.reshape(-1)] * math.sqrt(C)
    for i in range(L):
        p = f"model.layers.{i}"
        lin = lambda name, v: linear(W, f"{p}.{name}", v, lora, s, False)
        sliding = types[i] == "sliding_attention"
        n1 = norm(x, W[f"{p}.input_layernorm.weight"])
        q = norm(lin("self_attn.q_proj", n1).view(B, T, H, D), W[f"{p}.self_attn.q_norm.weight"]).transpose(1, 2)
        k = norm(lin("self_attn.k_proj", n1).view(B, T, Hkv, D), W[f"{p}.self_attn.k_norm.weight"]).transpose(1, 2)
        v = lin("self_attn.v_proj", n1).view(B, T, Hkv, D).transpose(1, 2)
        inv = inv_local if sliding else inv_full
        q, k = rotary(q, inv), rotary(k, inv)
        window = cfg["sliding_window"] if sliding else None
        a = attention(q, k, v, window, scale, cfg.get("attn_logit_softcapping")).transpose(1, 2).reshape(B * T, H * D)
        x = x + norm(lin("self_attn.o_proj", a), W[f"{p}.post_attention_layernorm.weight"])
        n2 = norm(x, W[f"{p}.pre_feedforward_layernorm.weight"])
        m = lin("mlp.down_proj", gelu(lin("mlp.gate_proj", n2)) * lin("mlp.up_proj", n2))
        x = x + norm(m, W[f"{p}.post_feedforward_layernorm.weight"])
    x = norm(x, W["model.norm.weight"])
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", True) else W["lm_head.weight"]
    logits = x @ head.T
    cap = cfg.get("final_logit_softcapping")
    if cap:
        logits = cap * torch.tanh(logits / cap)
    return logits.view(B, T, -1)


def gpt2_logits(cfg, W, ids, lora, s):
    B, T = ids.shape
    C, H = cfg["n_embd"], cfg["n_head"]
    D, eps = C // H, cfg["layer_norm_epsilon"]
    x = W["transformer.wte.weight"][ids.reshape(-1)] + W["transformer.wpe.weight"][torch.arange(T).repeat(B)]
    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}"
        lin = lambda name, v: linear(W, f"{p}.{name}", v, lora, s, True)
        n1 = layer_norm(x, W[f"{p}.ln_1.weight"], W[f"{p}.ln_1.bias"], eps)
        q, k, v = lin("attn.c_attn", n1).split(C, dim=-1)
        heads = lambda t: t.view(B, T, H, D).transpose(1, 2)
        a = attention(heads(q), heads(k), heads(v)).transpose(1, 2).reshape(B * T, C)
        x = x + lin("attn.c_proj", a)
        n2 = layer_norm(x, W[f"{p}.ln_2.weight"], W[f"{p}.ln_2.bias"], eps)
        f = lin("mlp.c_fc", n2)
        f = 0.5 * f * (1 + torch.tanh(math.sqrt(2 / math.pi) * (f + 0.044715 * f ** 3)))  # gelu_new
        x = x + lin("mlp.c_proj", f)
    x = layer_norm(x, W["transformer.ln_f.weight"], W["transformer.ln_f.bias"], eps)
    return (x @ W["transformer.wte.weight"].T).view(B, T, -1)


def model_logits(cfg, W, ids, lora, s):
    t = cfg["model_type"]
    if t == "gpt2":
        return gpt2_logits(cfg, W, ids, lora, s)
    if t == "gemma3_text":
        return gemma3_logits(cfg, W, ids, lora, s)
    if t in TIED_DEFAULT:
        return llama_logits(cfg, W, ids, lora, s)
    raise SystemExit(f"model_type {t!r} is not handled by this checker")


def check_modules(cfg, W, lora, pc):
    """Every adapted module exists in the base model with matching shapes (as PEFT would insist)."""
    fifo = cfg["model_type"] == "gpt2"
    if bool(pc.get("fan_in_fan_out")) != fifo:
        raise SystemExit(f"fan_in_fan_out is {pc.get('fan_in_fan_out')} but {cfg['model_type']} needs {fifo}")
    for path, (A, B) in lora.items():
        w = W.get(path + ".weight")
        if w is None:
            raise SystemExit(f"adapter names module {path!r}, which the base model lacks")
        IN, OUT = (w.shape[0], w.shape[1]) if fifo else (w.shape[1], w.shape[0])
        if A.shape[1] != IN or B.shape[0] != OUT:
            raise SystemExit(f"{path}: lora_A {list(A.shape)} / lora_B {list(B.shape)} do not fit W0 {list(w.shape)}")
        if path.split(".")[-1] not in pc["target_modules"]:
            raise SystemExit(f"{path} is not selected by target_modules {pc['target_modules']}")


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    adapter, base, expected = argv
    pc, st = read_adapter(adapter)
    cfg, W = load_model_folder(base)
    lora, s = adapter_lora(pc, st)
    check_modules(cfg, W, lora, pc)
    with open(expected) as f:
        exp = json.load(f)
    ids = torch.tensor(exp["ids"], dtype=torch.long)
    want = np.asarray(exp["logits"], dtype=np.float64)
    got = model_logits(cfg, W, ids, lora, s).reshape(-1).numpy()
    base_logits = model_logits(cfg, W, ids, {}, s).reshape(-1).numpy()
    if got.shape != want.shape:
        print(f"FAIL: {got.size} logits computed, expected.json has {want.size}")
        return 1
    diff = float(np.abs(got - want).max())
    bound = REL * float(np.abs(got).max()) + ABS
    effect = float(np.abs(got - base_logits).max())
    sha = hashlib.sha256(st).hexdigest()
    with open(expected, "rb") as f:
        sha_exp = hashlib.sha256(f.read()).hexdigest()
    print(f"adapter: {adapter} (adapter_model.safetensors sha256 {sha})")
    print(f"expected: {expected} (sha256 {sha_exp})")
    print(f"base model: {base} ({cfg['model_type']}), r {pc['r']}, lora_alpha {pc['lora_alpha']}, use_rslora {bool(pc.get('use_rslora'))}, "
          f"fan_in_fan_out {bool(pc.get('fan_in_fan_out'))}, scale {s:.6g}, {len(lora)} modules")
    print(f"logits: {ids.shape[0]}x{ids.shape[1]} tokens x {got.size // ids.numel()} vocab; the adapter moves them by up to {effect:.4g}")
    print(f"max |WebLoRA - PyTorch float64| = {diff:.3e} (bound {bound:.3e} = {REL}*max|logit| + {ABS})")
    ok = diff <= bound and effect > 10 * bound
    print("PASS" if ok else "FAIL" + ("" if diff <= bound else ": difference above the bound") + ("" if effect > 10 * bound else ": the adapter barely changes the logits, the check proves nothing"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
