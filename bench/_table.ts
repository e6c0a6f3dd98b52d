/** Prints rows as an aligned table, then one JSON line per row (for machines). */
export function printTable(bench: string, rows: readonly Record<string, string | number>[]): void {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]!);
  const fmt = (v: string | number) =>
    typeof v === "number" ? (Number.isInteger(v) ? v.toLocaleString("en-US") : v.toFixed(2)) : v;
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(fmt(r[c] ?? "")).length)));
  const line = (cells: string[]) => cells.map((s, i) => s.padStart(widths[i]!)).join("  ");
  console.log(line(cols));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) console.log(line(cols.map((c) => String(fmt(r[c] ?? "")))));
  for (const r of rows) console.log(JSON.stringify({ bench, ...r }));
}
