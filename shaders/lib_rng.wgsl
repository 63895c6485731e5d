// Counter-based random numbers (PCG hash): the value for element `idx` of stream `seed` depends only on
// (seed, idx), so a backward pass regenerates the forward pass's dropout mask instead of storing it.
// CPU twin: src/kernels/rng.cpu.ts.

fn pcg_hash(x: u32) -> u32 {
  let state = x * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// Uniform in [0, 1) with 24 bits.
fn rng_uniform(seed: u32, idx: u32) -> f32 {
  return f32(pcg_hash(idx ^ pcg_hash(seed)) >> 8u) * (1.0 / 16777216.0);
}

// Inverted dropout multiplier: 0 with probability p, else 1 / (1 - p).
fn dropout_mult(seed: u32, idx: u32, p: f32) -> f32 {
  if (p <= 0.0) { return 1.0; }
  return select(0.0, 1.0 / (1.0 - p), rng_uniform(seed, idx) >= p);
}
