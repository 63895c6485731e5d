"""Independent NumPy reimplementation of llama.cpp's reference block quantizers, for src/gpu/quant.ts.

ggml-quants.c, quantize_row_q8_0_ref and quantize_row_q4_0_ref, read as maths (every step in float32, as the C
does), written here without looking at the TypeScript:

  Q8_0, per block of 32 values x:  amax = max |x|;  d = amax / 127;  id = 1/d (0 when d = 0)
                                   q[j] = roundf(x[j]·id)          (round half away from zero)
  Q4_0, per block of 32 values x:  max = the value of largest magnitude with its sign (the first of equals)
                                   d = max / -8;  id = 1/d (0 when d = 0)
                                   q[j] = min(15, (int8)(x[j]·id + 8.5))   (truncation toward zero)
                                   byte j (j < 16) = q[j] | q[j + 16] << 4
  both: the block's scale is stored as f16 (round to nearest even); dequantized x'[j] = f16(d) · q[j]
        (Q4_0: f16(d) · (q[j] - 8)), exact in float32.

The cases are awkward on purpose: ties at .5, a zero block, blocks whose extreme is negative (and a positive
value as large: Q4_0 clamps it to 15), equal magnitudes of both signs, scales that fall into f16's subnormals
or underflow to 0, values near f16's largest scale, and random rows.

  /usr/bin/python3 tools/quant_golden.py      writes tests/fixtures/quant/{q8,q4}.json

Each case: kind, rows, cols, x (the float32 inputs), scales (f16 bit patterns, one per block), quants (the
blocks' bytes in order: 32 per Q8_0 block as int8 two's complement 0..255, 16 per Q4_0 block) and dequant
(float32 values).
"""
import json
import os

import numpy as np

F = np.float32
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "quant")


def q8_0(x):
    x = x.astype(F).reshape(-1, 32)
    scales, quants, deq = [], [], []
    for b in x:
        amax = F(np.max(np.abs(b)))
        d = F(amax / F(127))
        idv = F(F(1) / d) if d != 0 else F(0)
        q = []
        for v in b:
            p = F(v * idv)
            r = np.floor(np.abs(p) + F(0.5)) * np.sign(p)  # C roundf: half away from zero (exact in f32)
            q.append(int(r))
        dh = np.float16(d)
        scales.append(int(dh.view(np.uint16)))
        quants.extend((qi & 0xFF) for qi in q)
        deq.extend(float(F(F(dh) * F(qi))) for qi in q)
    return scales, quants, deq


def q4_0(x):
    x = x.astype(F).reshape(-1, 32)
    scales, quants, deq = [], [], []
    for b in x:
        amax, mx = F(0), F(0)
        for v in b:
            if amax < abs(v):
                amax, mx = F(abs(v)), v
        d = F(mx / F(-8))
        idv = F(F(1) / d) if d != 0 else F(0)
        q = [min(15, int(np.trunc(F(F(v * idv) + F(8.5))))) for v in b]
        dh = np.float16(d)
        scales.append(int(dh.view(np.uint16)))
        quants.extend(q[j] | (q[j + 16] << 4) for j in range(16))
        deq.extend(float(F(F(dh) * F(qi - 8))) for qi in q)
    return scales, quants, deq


def cases():
    rng = np.random.default_rng(13)
    c = {}
    # Ties: with amax 127 (Q8_0) d = 1 exactly, so x·id lands on k + 0.5; with max -8 (Q4_0) d = 1 too.
    t8 = np.array([127, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 126.5, -126.5] + [k + 0.5 for k in range(-11, 12)], F)
    c["ties"] = t8[:32]
    t4 = np.array([-8, 0.5, -0.5, 1.5, -1.5, 6.5, -6.5, 7.5, -7.5, 7.49, -7.51] + [k / 4 for k in range(-10, 11)], F)
    c["ties-q4"] = t4[:32]
    c["zero-block"] = np.zeros(32, F)
    neg = rng.normal(0, 1, 32).astype(F)
    neg[7] = F(-5)
    c["negative-extreme"] = neg
    both = rng.uniform(-1, 1, 32).astype(F)
    both[3], both[20] = F(2), F(-2)  # equal magnitudes: the first (+2) is max for Q4_0
    c["equal-magnitudes"] = both
    clamp = rng.uniform(-1, 1, 32).astype(F)
    clamp[0], clamp[31] = F(-3), F(3)  # max = -3: d = 0.375, +3 -> 8 + 8.5 -> clamped to 15
    c["positive-clamped"] = clamp
    c["subnormal-scale"] = (rng.normal(0, 1, 32) * 1e-5).astype(F)  # d ~ 1e-7: an f16 subnormal
    c["underflow-scale"] = (rng.normal(0, 1, 32) * 1e-9).astype(F)  # d rounds to f16 zero
    c["tiny-mixed"] = np.concatenate([(rng.normal(0, 1, 32) * 3e-6), rng.normal(0, 1, 32)]).astype(F)
    c["large"] = (rng.uniform(-1, 1, 32) * 60000).astype(F)
    c["random-rows"] = rng.normal(0, 0.05, 3 * 96).astype(F)  # 3 rows × 96 cols: 9 blocks, an odd count
    return c


def main():
    os.makedirs(OUT, exist_ok=True)
    shapes = {"tiny-mixed": (1, 64), "random-rows": (3, 96)}
    for kind, fn in (("q8", q8_0), ("q4", q4_0)):
        out = []
        for name, x in cases().items():
            rows, cols = shapes.get(name, (1, 32))
            assert x.size == rows * cols, name
            scales, quants, deq = fn(x)
            out.append(
                {
                    "name": name,
                    "kind": kind,
                    "rows": rows,
                    "cols": cols,
                    "x": [float(v) for v in x],
                    "scales": scales,
                    "quants": quants,
                    "dequant": deq,
                }
            )
        path = os.path.join(OUT, f"{kind}.json")
        with open(path, "w") as f:
            json.dump({"source": "tools/quant_golden.py", "cases": out}, f)
            f.write("\n")
        print(f"wrote {path}: {len(out)} cases")


if __name__ == "__main__":
    main()
