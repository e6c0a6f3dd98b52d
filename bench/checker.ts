// Linearizability checker throughput on histories from a simulated concurrent
// KV register service (linearizable by construction), plus one with a stale
// read injected to time refutation and counterexample shrinking.
// `npm run bench -- checker [--ops N] [--keys K] [--clients C] [--seed S]`
import { checkKvHistory, generateKvHistory } from "../src/testing/linearizability/index.ts";
import { Prng } from "../src/testing/prng.ts";
import { printTable } from "./_table.ts";

function flag(args: readonly string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : fallback;
}

export async function main(args: string[]): Promise<void> {
  const ops = flag(args, "ops", 10_000);
  const keys = flag(args, "keys", 10);
  const clients = flag(args, "clients", 10);
  const seed = flag(args, "seed", 1);
  const rows: Record<string, string | number>[] = [];
  const cases = [
    { ops: ops / 10, keys, clients, unknownRate: 0, stale: false },
    { ops, keys, clients, unknownRate: 0, stale: false },
    { ops, keys, clients, unknownRate: 0.02, stale: false },
    { ops, keys: 1, clients, unknownRate: 0, stale: false },
    { ops, keys, clients, unknownRate: 0, stale: true },
  ];
  for (const c of cases) {
    const h = generateKvHistory(new Prng(seed), {
      operations: c.ops,
      keys: c.keys,
      clients: c.clients,
      unknownRate: c.unknownRate,
      failRate: 0.01,
    });
    if (c.stale) {
      // The first value of k0, read back after everything else: provably stale.
      const first = h.find((r) => r.key === "k0" && r.op === "put" && r.status === "ok")!;
      h.push({
        ...first,
        client: clients,
        op: "get",
        input: null,
        output: first.input,
        call: 1e12,
        return: 1e12 + 1,
      });
    }
    const start = performance.now();
    const r = checkKvHistory(h);
    const ms = performance.now() - start;
    rows.push({
      ops: h.length,
      keys: c.keys,
      clients: c.clients,
      unknown: `${c.unknownRate * 100}%`,
      verdict: String(r.ok),
      shown: r.ok === false ? r.counterexample.operations.length : "",
      ms,
    });
  }
  printTable("checker", rows);
}
