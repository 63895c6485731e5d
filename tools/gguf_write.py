"""Write a Hugging Face model folder as a GGUF model file, laid out the way llama.cpp's convert_hf_to_gguf.py
lays it out, by hand (no gguf package): the oracle WebLoRA's GGUF loader (src/loaders/gguf-model.ts) is
tested against, and the files llama.cpp itself loads in tests/llamacpp/.

  /usr/bin/python3 tools/gguf_write.py <hf_folder> <out.gguf> [f32|f16|bf16|q8_0|q4_0]
  /usr/bin/python3 tools/gguf_write.py fixtures      tests/fixtures/gguf/ (the committed test files): the golden
                                                   models as GGUF, and tokenizer-only GGUFs of the bundled
                                                   SentencePiece tokenizer and of two small byte-level BPE
                                                   tokenizers laid out as Llama 3's and Qwen2's

What it writes (GGUF v3, little-endian, alignment 32):
  metadata   general.architecture (llama | qwen2 | qwen3 | gemma3), general.type = model, general.name,
             general.file_type, <arch>.{context_length, embedding_length, block_count, feed_forward_length,
             attention.head_count, attention.head_count_kv, attention.layer_norm_rms_epsilon, rope.freq_base,
             attention.key_length, attention.value_length, rope.dimension_count}, rope.scaling.{type, factor}
             for linear RoPE scaling, and the tokenizer: tokenizer.ggml.{model, pre, tokens, token_type,
             merges | scores, bos/eos/unknown_token_id, add_bos_token}, tokenizer.chat_template
  gemma3     also rope.freq_base_swa, final_logit_softcapping, attention.sliding_window and, when the layers do
             not follow llama.cpp's default period 6, attention.sliding_window_pattern (gemma3_kvs)
  tensors    token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, attn_q_norm, attn_k_norm,
             ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm, output (untied only); gemma3 adds
             post_attention_norm and post_ffw_norm (its ffn_norm is HF's pre_feedforward_layernorm). 1-D tensors
             stay F32, 2-D ones take the output type (Q8_0 / Q4_0 as ggml's reference quantisers compute them;
             rows that are not whole 32-blocks stay F16). ggml's dims are the PyTorch shape reversed.
  llama q/k  rows permuted per head from HF's rotate-half RoPE layout to llama.cpp's interleaved pairs:
             (n_head, 2, D/2, in) -> (n_head, D/2, 2, in), with n_head = num_key_value_heads for k.
  gemma3     every norm weight stored as 1 + w (Gemma's x·(1 + w) as llama.cpp's x·w); the embedding cut to
             the tokenizer's token count, as the converter does.

Tokenizers: tokenizer.model (SentencePiece, parsed by hand from its protobuf) -> "llama" with scores;
a byte-level BPE tokenizer.json -> "gpt2" with merges and the pre-tokenizer named by its regex; any other
BPE tokenizer.json (the golden fixtures' character-level ones) -> "gpt2" with pre "default": llama.cpp
loads it, and the tests feed token ids, so its text splitting never matters there.
"""
import json
import os
import re
import struct
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

ARCHES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3",
          "Gemma3ForCausalLM": "gemma3"}
LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
# Gemma 3's four norms per layer: the one after o_proj is llama.cpp's post_attention_norm, the one before the MLP
# its ffn_norm
GEMMA3_LAYER_NAMES = dict(LAYER_NAMES, post_attention_layernorm="post_attention_norm",
                          pre_feedforward_layernorm="ffn_norm", post_feedforward_layernorm="post_ffw_norm")
GLOBAL_NAMES = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}

# GGUF value types and ggml tensor types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
GGML = {"f32": 0, "f16": 1, "bf16": 30, "q8_0": 8, "q4_0": 2}
FILE_TYPE = {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7, "q4_0": 2}  # llama_ftype: ALL_F32, MOSTLY_F16, ...

LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
QWEN2_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
               "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


# ---- safetensors in ------------------------------------------------------------------------------------------

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
            t = torch.from_numpy(np.frombuffer(raw, dtype="<i2").copy()).view(torch.bfloat16)
        else:
            np_dtype = {"F32": "<f4", "F16": "<f2"}[info["dtype"]]
            t = torch.from_numpy(np.frombuffer(raw, dtype=np_dtype).copy())
        out[name] = t.reshape(info["shape"])
    return out


# ---- GGUF out ------------------------------------------------------------------------------------------------

def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q",
          I64: "<q", F64: "<d"}


def gguf_scalar(t, v):
    return gguf_string(v) if t == STRING else struct.pack(SCALAR[t], v)


def gguf_kv(key, t, v, array=False):
    out = gguf_string(key)
    if array:
        out += struct.pack("<IIQ", ARRAY, t, len(v)) + b"".join(gguf_scalar(t, x) for x in v)
    else:
        out += struct.pack("<I", t) + gguf_scalar(t, v)
    return out


def quantize_q8_0(w):
    """ggml's quantize_row_q8_0_ref: blocks of 32, d = amax/127 (stored f16), q = roundf(x/d) as int8."""
    x = w.to(torch.float32).numpy().reshape(-1, 32)
    amax = np.abs(x).max(axis=1)
    d = amax / np.float32(127)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    v = (x * inv[:, None]).astype(np.float64)  # the products in f32, rounded half away from zero exactly
    q = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int8)
    out = np.zeros((x.shape[0], 34), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def quantize_q4_0(w):
    """ggml's quantize_row_q4_0_ref: blocks of 32, d = max/-8 (the signed value of largest magnitude,
    stored f16), nibble = min(15, trunc(x/d + 8.5)); element j in the low nibble of byte j, j+16 in its high."""
    x = w.to(torch.float32).numpy().reshape(-1, 32)
    mx = x[np.arange(x.shape[0]), np.abs(x).argmax(axis=1)]
    d = mx / np.float32(-8)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    v = (x * inv[:, None]) + np.float32(8.5)  # both in f32, as the C code computes them
    q = np.minimum(15, np.trunc(v).astype(np.int8)).astype(np.uint8)
    out = np.zeros((x.shape[0], 18), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q[:, :16] | (q[:, 16:] << 4)
    return out.tobytes()


def write_gguf(path, kvs, tensors, alignment=32):
    """kvs: [(key, type, value, is_array)], tensors: [(name, torch tensor, 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0')]."""
    payloads = []
    for name, t, ty in tensors:
        t = t.contiguous()
        if ty == "q8_0":
            raw = quantize_q8_0(t)
        elif ty == "q4_0":
            raw = quantize_q4_0(t)
        elif ty == "f32":
            raw = t.to(torch.float32).numpy().astype("<f4").tobytes()
        elif ty == "f16":
            raw = t.to(torch.float16).numpy().astype("<f2").tobytes()
        else:
            raw = t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
        payloads.append(raw)
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))
    for kv in kvs:
        out += gguf_kv(*kv)
    offset = 0
    for (name, t, ty), raw in zip(tensors, payloads):
        out += gguf_string(name) + struct.pack("<I", t.dim())
        out += b"".join(struct.pack("<Q", d) for d in reversed(t.shape))
        out += struct.pack("<IQ", GGML[ty], offset)
        offset += (len(raw) + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    for raw in payloads:
        out += raw + b"\0" * (-len(raw) % alignment)
    with open(path, "wb") as f:
        f.write(out)


# ---- tokenizer -----------------------------------------------------------------------------------------------

def sentencepiece_pieces(path):
    """(piece, score, type) of a SentencePiece tokenizer.model: ModelProto field 1 = repeated SentencePiece
    {1: piece (string), 2: score (float), 3: type (enum, default NORMAL = 1)}."""
    data = open(path, "rb").read()

    def varint(buf, i):
        v = shift = 0
        while True:
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v, i

    def fields(buf):
        i = 0
        while i < len(buf):
            key, i = varint(buf, i)
            num, wire = key >> 3, key & 7
            if wire == 0:
                v, i = varint(buf, i)
            elif wire == 1:
                v, i = buf[i:i + 8], i + 8
            elif wire == 2:
                n, i = varint(buf, i)
                v, i = buf[i:i + n], i + n
            elif wire == 5:
                v, i = buf[i:i + 4], i + 4
            else:
                raise ValueError(f"{path}: protobuf wire type {wire} is not used by sentencepiece")
            yield num, v

    pieces = []
    for num, v in fields(data):
        if num != 1:
            continue
        piece, score, typ = "", 0.0, 1
        for n2, v2 in fields(v):
            if n2 == 1:
                piece = v2.decode("utf-8")
            elif n2 == 2:
                score = struct.unpack("<f", v2)[0]
            elif n2 == 3:
                typ = v2
        pieces.append((piece, score, typ))
    return pieces


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def pre_name(tj):
    """tokenizer.ggml.pre for a byte-level tokenizer.json, told apart by its split regex as llama.cpp's
    convert_hf_to_gguf.py tells them apart (by hashing what they produce)."""
    pre = tj.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    regexes = [p["pattern"]["Regex"] for p in parts if p.get("type") == "Split" and "Regex" in p.get("pattern", {})]
    if regexes == [LLAMA3_REGEX]:
        return "llama-bpe"
    if regexes == [QWEN2_REGEX]:
        return "qwen2"
    if any(p.get("type") == "ByteLevel" and p.get("use_regex", True) for p in parts):
        return "gpt-2"
    return "default"


def tokenizer_kvs(folder, n_vocab):
    tc_path = os.path.join(folder, "tokenizer_config.json")
    tc = json.load(open(tc_path)) if os.path.exists(tc_path) else {}
    tj = json.load(open(os.path.join(folder, "tokenizer.json")))
    sp_path = os.path.join(folder, "tokenizer.model")
    kvs = []
    ids = {}
    if os.path.exists(sp_path):
        pieces = sentencepiece_pieces(sp_path)
        tokens = [p for p, _, _ in pieces]
        kvs += [("tokenizer.ggml.model", STRING, "llama", False),
                ("tokenizer.ggml.tokens", STRING, tokens, True),
                ("tokenizer.ggml.scores", F32, [s for _, s, _ in pieces], True),
                ("tokenizer.ggml.token_type", I32, [t for _, _, t in pieces], True)]
    else:
        vocab = dict(tj["model"]["vocab"])
        added = {t["content"]: t for t in tj.get("added_tokens", [])}
        for t in added.values():
            vocab[t["content"]] = t["id"]
        tokens = [None] * max(n_vocab, max(vocab.values()) + 1)
        for tok, i in vocab.items():
            tokens[i] = tok
        types = []
        for i, tok in enumerate(tokens):
            if tok is None:  # an id the embedding has but the tokenizer never emits (llama.cpp pads the same way)
                tokens[i] = f"[PAD{i}]"
                types.append(5)
            elif tok in added:
                types.append(3 if added[tok].get("special") else 4)
            else:
                types.append(1)
        merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"].get("merges", [])]
        kvs += [("tokenizer.ggml.model", STRING, "gpt2", False),
                ("tokenizer.ggml.pre", STRING, pre_name(tj), False),
                ("tokenizer.ggml.tokens", STRING, tokens, True),
                ("tokenizer.ggml.token_type", I32, types, True),
                ("tokenizer.ggml.merges", STRING, merges, True)]
    for key, field in (("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token")):
        tok = tc.get(field)
        tok = tok.get("content") if isinstance(tok, dict) else tok
        if isinstance(tok, str) and tok in tokens:
            kvs.append((f"tokenizer.ggml.{key}_token_id", U32, tokens.index(tok), False))
    if "add_bos_token" in tc:
        kvs.append(("tokenizer.ggml.add_bos_token", BOOL, bool(tc["add_bos_token"]), False))
    if isinstance(tc.get("chat_template"), str):
        kvs.append(("tokenizer.chat_template", STRING, tc["chat_template"], False))
    return kvs


# ---- the model -----------------------------------------------------------------------------------------------

def permute(w, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute: HF rotate-half rows -> llama.cpp interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_name(name, arch):
    base, _, suffix = name.rpartition(".")
    if base.startswith("model.layers."):
        _, _, layer, module = base.split(".", 3)
        return f"blk.{layer}.{(GEMMA3_LAYER_NAMES if arch == 'gemma3' else LAYER_NAMES)[module]}.{suffix}"
    return f"{GLOBAL_NAMES[base]}.{suffix}"


def gemma3_kvs(cfg, head_dim):
    """What convert_hf_to_gguf.py's Gemma3Model adds, and the window pattern llama.cpp reads.

    llama.cpp's gemma3 (src/models/gemma3.cpp) slides layer i unless i % p == p - 1 for a period p, 6 when the
    file has no attention.sliding_window_pattern (the converter writes none: every Gemma 3 is 6). This writer
    writes p when the config's layers follow another period, and refuses layers no period describes; it also
    refuses what llama.cpp cannot run: an attention soft cap (the converter asserts there is none) and a
    query_pre_attn_scalar other than the head_dim llama.cpp scales by (hidden / heads for the 62-layer 27B)."""
    n = cfg["num_hidden_layers"]
    if cfg.get("attn_logit_softcapping") is not None:
        raise SystemExit("gemma3: attn_logit_softcapping is set; llama.cpp's gemma3 has no attention soft cap")
    scalar = cfg["hidden_size"] // cfg["num_attention_heads"] if n == 62 else head_dim
    if cfg.get("query_pre_attn_scalar", 256) != scalar:
        raise SystemExit(f"gemma3: query_pre_attn_scalar {cfg.get('query_pre_attn_scalar')} != {scalar}, the "
                         "scale llama.cpp uses")
    if cfg.get("layer_types") is not None:
        sliding = [t == "sliding_attention" for t in cfg["layer_types"]]
    else:
        pattern = cfg.get("sliding_window_pattern", 6)
        sliding = [(i + 1) % pattern != 0 for i in range(n)]
    kvs = [("gemma3.rope.freq_base_swa", F32, cfg.get("rope_local_base_freq", 10000.0), False)]
    if cfg.get("final_logit_softcapping"):
        kvs.append(("gemma3.final_logit_softcapping", F32, cfg["final_logit_softcapping"], False))
    if not any(sliding):
        return kvs + [("gemma3.attention.sliding_window", U32, 0, False)]
    period = next((p for p in range(1, n + 2) if sliding == [i % p < p - 1 for i in range(n)]), None)
    if period is None:
        raise SystemExit(f"gemma3: sliding layers {sliding} follow no period, which llama.cpp's gemma3 needs")
    kvs.append(("gemma3.attention.sliding_window", U32, cfg["sliding_window"], False))
    if sliding != [i % 6 < 5 for i in range(n)]:
        kvs.append(("gemma3.attention.sliding_window_pattern", U32, period, False))
    return kvs


def convert(folder, out, outtype="f32"):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    arch = ARCHES[cfg["architectures"][0]]
    weights = load_safetensors(os.path.join(folder, "model.safetensors"))
    gemma = arch == "gemma3"
    n_head, hidden = cfg["num_attention_heads"], cfg["hidden_size"]
    n_kv = cfg.get("num_key_value_heads") or n_head
    head_dim = cfg.get("head_dim") or (256 if gemma else hidden // n_head)
    tied = cfg.get("tie_word_embeddings", arch != "qwen2")
    rope = cfg.get("rope_scaling")
    rope_type = rope and (rope.get("rope_type") or rope.get("type"))
    if rope_type not in (None, "default", "linear"):
        raise SystemExit(f"{folder}: rope_scaling {rope} is not written by this script")
    kvs = [("general.architecture", STRING, arch, False),
           ("general.type", STRING, "model", False),
           ("general.name", STRING, os.path.basename(os.path.normpath(folder)), False),
           ("general.file_type", U32, FILE_TYPE[outtype], False),
           (f"{arch}.context_length", U32, cfg.get("max_position_embeddings", 131072 if gemma else 2048), False),
           (f"{arch}.embedding_length", U32, hidden, False),
           (f"{arch}.block_count", U32, cfg["num_hidden_layers"], False),
           (f"{arch}.feed_forward_length", U32, cfg["intermediate_size"], False),
           (f"{arch}.attention.head_count", U32, n_head, False),
           (f"{arch}.attention.head_count_kv", U32, n_kv, False),
           (f"{arch}.attention.layer_norm_rms_epsilon", F32, cfg.get("rms_norm_eps", 1e-6), False),
           (f"{arch}.rope.freq_base", F32, cfg.get("rope_theta", 1e6 if gemma else 10000.0), False),
           (f"{arch}.attention.key_length", U32, head_dim, False),
           (f"{arch}.attention.value_length", U32, head_dim, False),
           (f"{arch}.rope.dimension_count", U32, head_dim, False)]
    if rope_type == "linear":  # on the full layers only, for gemma3: llama.cpp's sliding layers are unscaled
        kvs += [(f"{arch}.rope.scaling.type", STRING, "linear", False),
                (f"{arch}.rope.scaling.factor", F32, rope["factor"], False)]
    if gemma:
        kvs += gemma3_kvs(cfg, head_dim)
    n_vocab = cfg["vocab_size"]
    if gemma:  # the converter drops embedding rows past the tokenizer's tokens (Gemma's padded vocabulary)
        tj = json.load(open(os.path.join(folder, "tokenizer.json")))
        n_vocab = min(n_vocab, len(tj["model"]["vocab"]) + len(tj["added_tokens"]))
    kvs += tokenizer_kvs(folder, n_vocab)
    if gemma and os.path.exists(os.path.join(folder, "tokenizer.model")):  # Gemma's SentencePiece: no dummy prefix
        kvs.append(("tokenizer.ggml.add_space_prefix", BOOL, False, False))
    tensors = []
    for name in sorted(weights, key=order_key):
        if name == "lm_head.weight" and tied:
            continue
        w = weights[name]
        if arch == "llama" and ".self_attn.q_proj." in name:
            w = permute(w, n_head)
        elif arch == "llama" and ".self_attn.k_proj." in name:
            w = permute(w, n_kv)
        if gemma and name.endswith("norm.weight"):
            w = w + 1  # Gemma's x·(1 + w) norms become llama.cpp's x·w
        if gemma and name == "model.embed_tokens.weight":
            w = w[:n_vocab]
        ty = outtype if w.dim() == 2 else "f32"
        if ty in ("q8_0", "q4_0") and w.shape[-1] % 32 != 0:
            ty = "f16"  # rows that are not whole blocks stay F16, as convert_hf_to_gguf.py falls back
        tensors.append((gguf_name(name, arch), w, ty))
    write_gguf(out, kvs, tensors)


def order_key(name):
    # convert_hf_to_gguf.py's order: token_embd, then the layers in order, then output_norm and output
    if name.startswith("model.layers."):
        return (1, int(name.split(".")[2]), name)
    return (0 if "embed_tokens" in name else 2, 0, name)


FIXTURE_CASES = [  # (golden folder, out type): small enough to commit, one per family and type
    ("llama-gqa-tied", "f32"), ("llama-gqa-tied", "f16"), ("llama-untied", "bf16"),
    ("qwen2-bias", "f32"), ("qwen3-gqa-tied", "f32"), ("qwen3-untied", "f16"),
    ("qwen3-untied", "q8_0"), ("qwen3-untied", "q4_0"),  # hidden 32: q/k/v/gate/up, embeddings and head quantised
    ("gemma3-pattern-untied", "f32"),  # sliding_window_pattern 2, linear RoPE scaling on the full layers, untied
    # final soft cap, layer_types of period 3, rope.freq_base_swa; hidden 64: every linear quantised
    ("gemma3-final-softcap", "f32"), ("gemma3-final-softcap", "q8_0"), ("gemma3-final-softcap", "q4_0"),
]


def tokenizer_only(folder, out, arch="llama"):
    """A GGUF with a tokenizer and no tensors: what the tokenizer tests need, without the weights."""
    kvs = [("general.architecture", STRING, arch, False), ("general.type", STRING, "model", False)]
    write_gguf(out, kvs + tokenizer_kvs(folder, 0), [])


def train_byte_bpe(text, n_merges):
    """A small byte-level BPE (GPT-2 style: bytes as printable characters, a space joins the next word),
    trained by counting pairs: enough merges to exercise a real byte-level tokenizer."""
    b2u = bytes_to_unicode()
    words = {}
    for w in re.findall(r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]+|\s+", text):
        key = tuple(b2u[b] for b in w.encode("utf-8"))
        words[key] = words.get(key, 0) + 1
    vocab = [b2u[b] for b in range(256)]
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for w, n in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + n
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        vocab.append(best[0] + best[1])
        merged = {}
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    return vocab, merges


def byte_bpe_tokenizer(kind, vocab, merges):
    """tokenizer.json + tokenizer_config.json laid out as Llama 3's (kind "llama3") or Qwen2's ("qwen2")."""
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"] if kind == "llama3" else \
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    n = len(vocab)
    added = [{"id": n + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(specials)]
    regex = LLAMA3_REGEX if kind == "llama3" else QWEN2_REGEX
    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None if kind == "llama3" else {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": specials[0], "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": specials[0], "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": specials[0], "type_id": 1}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {specials[0]: {"id": specials[0], "ids": [n], "tokens": [specials[0]]}}}
        if kind == "llama3" else None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": kind == "llama3",
                  "vocab": {t: i for i, t in enumerate(vocab)}, "merges": [f"{a} {b}" for a, b in merges]},
    }
    tc = {"add_bos_token": kind == "llama3", "bos_token": specials[0] if kind == "llama3" else None,
          "eos_token": specials[1] if kind == "llama3" else specials[2],
          "chat_template": "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"}
    return tj, tc


def tokenizer_fixtures():
    out_dir = os.path.join(FIXTURES, "gguf")
    bundled = os.path.join(ROOT, "public", "models", "weblora-llama-1m")
    tokenizer_only(bundled, os.path.join(out_dir, "spm-weblora-llama-1m.tokenizer.gguf"))
    text = open(os.path.join(ROOT, "public", "datasets", "fortunes.txt"), encoding="utf-8").read()[:60000]
    vocab, merges = train_byte_bpe(text, 300)
    for kind in ("llama3", "qwen2"):
        folder = os.path.join(out_dir, f"bpe-{kind}")
        os.makedirs(folder, exist_ok=True)
        tj, tc = byte_bpe_tokenizer(kind, vocab, merges)
        json.dump(tj, open(os.path.join(folder, "tokenizer.json"), "w"), ensure_ascii=False)
        json.dump(tc, open(os.path.join(folder, "tokenizer_config.json"), "w"), ensure_ascii=False, indent=1)
        tokenizer_only(folder, os.path.join(out_dir, f"bpe-{kind}.tokenizer.gguf"),
                       "llama" if kind == "llama3" else "qwen2")


def main():
    if sys.argv[1:2] == ["fixtures"]:
        os.makedirs(os.path.join(FIXTURES, "gguf"), exist_ok=True)
        for case, ty in FIXTURE_CASES:
            out = os.path.join(FIXTURES, "gguf", f"{case}-{ty}.gguf")
            convert(os.path.join(FIXTURES, case), out, ty)
            print(out, os.path.getsize(out))
        tokenizer_fixtures()
        return
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    convert(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else "f32")


if __name__ == "__main__":
    main()
