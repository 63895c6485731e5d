// Formatting shared by every layer (error messages, the CLI, the page). No imports: any layer may use it.

/**
 * Bytes in binary multiples (1 KiB = 1024 B): whole bytes below 1 KiB, then 2 decimals below 10 and 1
 * above, e.g. "512 B", "1.50 KiB", "172.0 MiB". `labels: 'short'` spells the units KB, MB, GB (the page).
 */
export function fmtBytes(n: number, labels: 'binary' | 'short' = 'binary'): string {
  if (!Number.isFinite(n)) return '?';
  const units = labels === 'short' ? ['B', 'KB', 'MB', 'GB', 'TB'] : ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : Math.abs(n) < 10 ? 2 : 1)} ${units[i]}`;
}
