// The attention mask, shared by the forward and both backward kernels and mirrored by
// src/kernels/attention.cpu.ts. A query at position pos sees key j when
//   j <= pos  and  (window = 0  or  pos - window < j)        (causal, optionally a sliding window)
// Every position sees itself, so every softmax row has at least one key.
// Scores may carry a soft cap (Gemma's attn_logit_softcapping): S = softcap(scale·q·k, c), and the backward
// multiplies dS by softcap_grad(S, c) (lib_softcap.wgsl; c = 0: none, and both are exact no-ops).
//#include lib_softcap

fn attn_visible(pos: u32, j: u32, window: u32) -> bool {
  return j <= pos && (window == 0u || j + window > pos);
}

// The first key position `pos` sees.
fn attn_first_key(pos: u32, window: u32) -> u32 {
  return select(0u, pos + 1u - window, window != 0u && pos + 1u > window);
}

// One past the last query row (0-based, of tq rows whose row 0 sits at position off) that sees key j:
// rows from max(j - off, 0) up to here see j (the causal part), given the window.
fn attn_rows_end(j: u32, off: u32, tq: u32, window: u32) -> u32 {
  if (window == 0u) { return tq; }
  // pos < j + window  <=>  row < j + window - off
  return min(tq, select(0u, j + window - off, j + window > off));
}
