// The target value the cross-entropy loss skips (prompt tokens, padding): no loss, no gradient. It lives
// in a module of its own, with no GPU import, so the CPU twin and the data pipeline can share it.

export const IGNORE_INDEX = 0xffffffff;
