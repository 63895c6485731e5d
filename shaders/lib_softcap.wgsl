// Gemma's final-logit soft cap (final_logit_softcapping): z = c·tanh(y / c) for c > 0, z = y for c = 0,
// and its derivative dz/dy = 1 − (z / c)². tanh(x) = sign(x)·(1 − 2 / (exp(2|x|) + 1)): exp(2|x|) may
// overflow to +inf, which gives exactly ±1 (never inf / inf). |tanh error| ≤ (16 + 4|x|)·2^-24 absolute
// (exp is within 3 + 2·2|x| ULP, the division 2.5 ULP, the subtraction 1).

fn softcap(y: f32, c: f32) -> f32 {
  if (c <= 0.0) {
    return y;
  }
  let x = y / c;
  let t = 1.0 - 2.0 / (exp(2.0 * abs(x)) + 1.0);
  return c * select(t, -t, x < 0.0);
}

/** dz/dy at z = softcap(y, c). */
fn softcap_grad(z: f32, c: f32) -> f32 {
  if (c <= 0.0) {
    return 1.0;
  }
  let r = z / c;
  return 1.0 - r * r;
}
