"""Checks that a LoRA adapter WebLoRA trained on an int4 (Q4_0) base still helps the float base, in PyTorch.

  /usr/bin/python3 tools/check_qlora.py <adapter folder or .zip> <base model folder> <heldout.json>

heldout.json (written by tests/training/qlora.test.ts) holds held-out token ids and their next-token targets
("ids", "targets": rows of T; targets of -1 are not counted). This script applies the PEFT adapter to the
float32 checkpoint as PEFT does, with tools/check_peft.py's float64 model code (its own safetensors reader,
nothing from WebLoRA), and prints the mean cross-entropy of the held-out targets without and with the adapter.
PASS when the adapter lowers it: what was learnt against the quantized base carries over to the float one.
Run with Debian's /usr/bin/python3 (it has torch).
"""
import hashlib
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_peft import adapter_lora, check_modules, load_model_folder, model_logits, read_adapter  # noqa: E402


def heldout_loss(cfg, W, ids, targets, lora, s):
    logits = model_logits(cfg, W, ids, lora, s)  # (B, T, V) float64
    logp = torch.log_softmax(logits, dim=-1)
    keep = targets >= 0
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return float(-(picked[keep]).mean()), int(keep.sum())


def main(argv):
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    adapter, base, heldout = argv
    pc, st = read_adapter(adapter)
    cfg, W = load_model_folder(base)
    lora, s = adapter_lora(pc, st)
    check_modules(cfg, W, lora, pc)
    with open(heldout, "rb") as f:
        raw = f.read()
    h = json.loads(raw)
    ids = torch.tensor(h["ids"], dtype=torch.long)
    targets = torch.tensor(h["targets"], dtype=torch.long)
    without, n = heldout_loss(cfg, W, ids, targets, {}, s)
    with_, _ = heldout_loss(cfg, W, ids, targets, lora, s)
    print(f"adapter: {adapter} (adapter_model.safetensors sha256 {hashlib.sha256(st).hexdigest()})")
    print(f"held-out: {heldout} (sha256 {hashlib.sha256(raw).hexdigest()}), {n} targets")
    print(f"base model: {base} ({cfg['model_type']}, float32 weights computed in float64), r {pc['r']}, scale {s:.6g}, {len(lora)} modules")
    print(f"held-out loss without the adapter: {without:.6f}")
    print(f"held-out loss with the adapter:    {with_:.6f}")
    ok = with_ < without
    print("PASS" if ok else "FAIL: the adapter does not lower the held-out loss of the float base")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
