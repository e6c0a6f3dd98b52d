/** Renders a counterexample as a small text timeline, one line per operation. */

import type { CounterexampleOperation, Model } from "./model.ts";

const TIMELINE_COLUMNS_MAX = 60;

function describe<State, Input, Output>(
  model: Model<State, Input, Output>,
  input: Input,
  output: Output | undefined,
): string {
  if (model.describeOperation) return model.describeOperation(input, output);
  const shown = output === undefined ? "?" : JSON.stringify(output);
  return `${JSON.stringify(input)} -> ${shown}`;
}

/**
 * Lays operations out on a shared axis of their distinct event times (ranks,
 * not real durations: only the order of events matters to linearizability).
 */
export function renderCounterexample<State, Input, Output>(
  model: Model<State, Input, Output>,
  partition: string,
  operations: readonly CounterexampleOperation<Input, Output>[],
  culpritIndex: number,
  from: "init" | "any",
): string {
  const times = new Set<number>();
  for (const { operation: op, weakened } of operations) {
    times.add(op.call);
    if (op.status === "ok" && !weakened && op.return !== null) times.add(op.return);
  }
  const points = [...times].sort((a, b) => a - b);
  // Up to 4 columns per distinct time; past the width cap, ranks are squeezed
  // (long histories lose detail in the bars, never in the listed times).
  const scale = Math.min(4, TIMELINE_COLUMNS_MAX / Math.max(1, points.length));
  const width = Math.floor((points.length - 1) * scale) + 2;
  const rank = new Map(points.map((t, i) => [t, i]));
  const col = (t: number): number => Math.floor(rank.get(t)! * scale);

  const rows = operations.map(({ operation: op, weakened }, idx) => {
    const open = op.status !== "ok" || weakened || op.return === null;
    const start = col(op.call);
    const end = open ? width - 1 : col(op.return!);
    let bar = "";
    for (let c = 0; c < width; c++) {
      if (c === start) bar += c === end ? "o" : "[";
      else if (c === end) bar += open ? ">" : "]";
      else if (c > start && c < end) bar += "=";
      else bar += " ";
    }
    const ret = open ? "?" : String(op.return);
    const what = describe(model, op.input, open ? undefined : op.output);
    const note = weakened ? " (treated as unknown)" : op.status === "unknown" ? " (unknown outcome)" : "";
    const mark = idx === culpritIndex ? "   <- cannot be linearized" : "";
    return {
      who: `client ${String(op.client)}`,
      when: `[${op.call}, ${ret}]`,
      bar,
      text: `${what}${note}${mark}`,
    };
  });
  const whoW = Math.max(...rows.map((r) => r.who.length));
  const whenW = Math.max(...rows.map((r) => r.when.length));
  const start =
    from === "init"
      ? `from the initial state${model.describeState ? ` ${model.describeState(model.init())}` : ""}`
      : "from any starting state (older operations cut away)";
  const lines = [
    `partition ${JSON.stringify(partition)} is not linearizable; ${operations.length} operation(s) that cannot be ordered, ${start}:`,
    ...rows.map((r) => `  ${r.who.padEnd(whoW)}  ${r.when.padEnd(whenW)}  |${r.bar}|  ${r.text}`),
  ];
  return lines.join("\n");
}
