"""Writes PEFT adapter fixtures as Python PEFT saves them, with the logits an independent float64 model
computes with each adapter applied (the oracle for tests/adapters/peft-import.test.ts).

  /usr/bin/python3 tools/make_peft_fixture.py            every case
  /usr/bin/python3 tools/make_peft_fixture.py <case>...  llama-gqa-tied | gpt2-tiny

For a base model in tests/fixtures/<case>/ (config.json, model.safetensors) it writes tests/fixtures/peft-<case>/:
  adapter/adapter_model.safetensors  base_model.model.<module>.lora_A.weight [r, in], .lora_B.weight [out, r],
                                     F32, metadata {"format": "pt"} (what PEFT's save_pretrained writes)
  adapter/adapter_config.json        PEFT's LoraConfig keys, sorted, indent 2 (json.dumps(..., sort_keys=True))
  expected.json                      the case, settings, ids, and the bound the test uses
  expected.safetensors               input_ids (B, T) I32, logits (B, T, V) F32 (computed in float64)
A and B are random and nonzero (PEFT would start B at zero: a trained adapter is what matters here).
The model code is tools/check_peft.py's (not tools/golden.py's).
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_peft import load_model_folder, model_logits, write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

CASES = {
    # Llama with GQA and tied embeddings; rsLoRA; a subset of the linears (no gate_proj / up_proj).
    "llama-gqa-tied": dict(r=4, alpha=8, use_rslora=True, targets=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"], seed=1),
    # GPT-2: Conv1D weights stored [in, out], so PEFT sets fan_in_fan_out; c_proj selects attn.c_proj and mlp.c_proj.
    "gpt2-tiny": dict(r=4, alpha=16, use_rslora=False, targets=["c_attn", "c_proj", "c_fc"], seed=2),
}


def linear_modules(cfg):
    """(module path, in, out) of every linear layer, in model order."""
    out = []
    if cfg["model_type"] == "gpt2":
        C = cfg["n_embd"]
        F = cfg.get("n_inner") or 4 * C
        for i in range(cfg["n_layer"]):
            p = f"transformer.h.{i}"
            out += [(f"{p}.attn.c_attn", C, 3 * C), (f"{p}.attn.c_proj", C, C), (f"{p}.mlp.c_fc", C, F), (f"{p}.mlp.c_proj", F, C)]
        return out
    C, H = cfg["hidden_size"], cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads") or H
    D = cfg.get("head_dim") or C // H
    F = cfg["intermediate_size"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out += [(f"{p}.self_attn.q_proj", C, H * D), (f"{p}.self_attn.k_proj", C, Hkv * D), (f"{p}.self_attn.v_proj", C, Hkv * D),
                (f"{p}.self_attn.o_proj", H * D, C), (f"{p}.mlp.gate_proj", C, F), (f"{p}.mlp.up_proj", C, F), (f"{p}.mlp.down_proj", F, C)]
    return out


def peft_config(base, r, alpha, use_rslora, targets, fan_in_fan_out):
    """adapter_config.json as PEFT 0.14 writes it for a LoraConfig (every key, sorted)."""
    return {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": base, "bias": "none",
        "eva_config": None, "exclude_modules": None, "fan_in_fan_out": fan_in_fan_out, "inference_mode": True,
        "init_lora_weights": True, "layer_replication": None, "layers_pattern": None, "layers_to_transform": None,
        "loftq_config": {}, "lora_alpha": alpha, "lora_bias": False, "lora_dropout": 0.05, "megatron_config": None,
        "megatron_core": "megatron.core", "modules_to_save": None, "peft_type": "LORA", "r": r, "rank_pattern": {},
        "revision": None, "target_modules": targets, "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": use_rslora,
    }


def make_case(name):
    c = CASES[name]
    cfg, W = load_model_folder(os.path.join(FIXTURES, name))
    g = np.random.default_rng(c["seed"])
    r = c["r"]
    arrays, lora = {}, {}
    for path, IN, OUT in linear_modules(cfg):
        if path.split(".")[-1] not in c["targets"]:
            continue
        A = g.uniform(-1, 1, (r, IN)).astype(np.float32) / np.float32(np.sqrt(IN))  # PEFT's kaiming-uniform range
        B = g.uniform(-0.5, 0.5, (OUT, r)).astype(np.float32)  # nonzero: as if trained
        arrays[f"base_model.model.{path}.lora_A.weight"] = A
        arrays[f"base_model.model.{path}.lora_B.weight"] = B
        lora[path] = (torch.from_numpy(A).double(), torch.from_numpy(B).double())
    s = c["alpha"] / np.sqrt(r) if c["use_rslora"] else c["alpha"] / r
    B_, T_ = 2, 8
    ids = torch.from_numpy(g.integers(0, cfg["vocab_size"], (B_, T_))).long()
    logits = model_logits(cfg, W, ids, lora, s)
    base_logits = model_logits(cfg, W, ids, {}, s)

    out = os.path.join(FIXTURES, f"peft-{name}")
    os.makedirs(os.path.join(out, "adapter"), exist_ok=True)
    write_safetensors(os.path.join(out, "adapter", "adapter_model.safetensors"), arrays, {k: "F32" for k in arrays}, {"format": "pt"})
    pc = peft_config(name, r, c["alpha"], c["use_rslora"], sorted(c["targets"]), cfg["model_type"] == "gpt2")
    with open(os.path.join(out, "adapter", "adapter_config.json"), "w") as f:
        f.write(json.dumps(pc, indent=2, sort_keys=True))  # PEFT: no trailing newline
    write_safetensors(os.path.join(out, "expected.safetensors"),
                      {"input_ids": ids.numpy().astype(np.int32), "logits": logits.numpy().astype(np.float32)},
                      {"input_ids": "I32", "logits": "F32"}, {"format": "pt"})
    effect = float((logits - base_logits).abs().max())
    meta = {"case": name, "base": f"tests/fixtures/{name}", "B": B_, "T": T_, "r": r, "lora_alpha": c["alpha"],
            "use_rslora": c["use_rslora"], "target_modules": sorted(c["targets"]), "scale": s, "modules": sorted(lora),
            "max_abs_logit": float(logits.abs().max()), "adapter_effect": effect,
            "made_by": "tools/make_peft_fixture.py (float64 model code of tools/check_peft.py)"}
    with open(os.path.join(out, "expected.json"), "w") as f:
        f.write(json.dumps(meta, indent=1) + "\n")
    print(f"peft-{name}: {len(lora)} modules, scale {s:.4g}, max|logit| {meta['max_abs_logit']:.3f}, adapter moves logits by up to {effect:.3f}")


if __name__ == "__main__":
    for n in sys.argv[1:] or list(CASES):
        make_case(n)
