/**
 * Recording client histories, and reading/writing them as JSON lines so other
 * tools (Porcupine, Knossos, Elle, a notebook) can check them too.
 *
 * ## Format: one JSON object per line, one line per operation
 *
 * ```json
 * {"client":1,"op":"put","key":"k1","input":"v1","output":null,"call":100,"return":112,"status":"ok"}
 * {"client":2,"op":"get","key":"k1","input":null,"output":"v1","call":105,"return":120,"status":"ok"}
 * {"client":3,"op":"cas","key":"k1","input":{"expected":"v1","new":"v2"},"output":true,"call":130,"return":141,"status":"ok"}
 * {"client":1,"op":"delete","key":"k1","input":null,"output":null,"call":150,"return":null,"status":"unknown"}
 * ```
 *
 * - `client`: number or string naming the issuing client (one operation in flight per client).
 * - `op`, `key`: the operation name and the key it touches. The KV model knows
 *   `get`, `put`, `delete` and `cas`; other models may use other names.
 * - `input`, `output`: JSON values. Byte strings (`Uint8Array`) are written as
 *   `{"$bytes":"<base64>"}` and read back as `Uint8Array`; text stays a plain
 *   string. KV conventions: get → input null, output value or null (absent);
 *   put → input value, output null; delete → input null, output null;
 *   cas → input `{"expected": value | null, "new": value}` (expected null =
 *   "key absent"), output true/false.
 * - `call`, `return`: times on one clock shared by the whole history (the
 *   simulator's clock, or any monotonic clock). `return` is null when the
 *   outcome is unknown.
 * - `status`: "ok" (took effect once, between call and return, with `output`),
 *   "fail" (definitely did not take effect; not checked), "unknown" (may or
 *   may not have taken effect, at any time after `call`; `output` is null).
 *
 * Lines are written in invocation order. Blank lines are ignored on reading.
 */

import { readFile, writeFile } from "node:fs/promises";
import { HistoryFormatError, InvalidArgumentError, ResourceExhaustedError } from "../errors.ts";

/** A JSON value, extended with byte strings. */
export type HistoryValue =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | readonly HistoryValue[]
  | { readonly [key: string]: HistoryValue };

export type HistoryStatus = "ok" | "fail" | "unknown";

export interface HistoryRecord {
  readonly client: number | string;
  readonly op: string;
  readonly key: string;
  readonly input: HistoryValue;
  readonly output: HistoryValue;
  readonly call: number;
  readonly return: number | null;
  readonly status: HistoryStatus;
}

export interface HistoryRecorderOptions {
  /** The clock invocation and completion times are read from (the simulator's, in simulations). */
  readonly now: () => number;
  /** Bound on recorded operations, so a runaway workload fails loudly instead of exhausting memory. */
  readonly maxOperations?: number;
}

const MAX_OPERATIONS_DEFAULT = 10_000_000;

interface MutableRecord {
  client: number | string;
  op: string;
  key: string;
  input: HistoryValue;
  output: HistoryValue;
  call: number;
  return: number | null;
  status: HistoryStatus | "pending";
}

/**
 * Collects operations as clients run them: `invoke` when the request is
 * issued, then exactly one of `ok`, `fail` or `unknown` when it ends.
 * Operations still pending when the history is read count as unknown.
 */
export class HistoryRecorder {
  readonly #now: () => number;
  readonly #max: number;
  readonly #records: MutableRecord[] = [];
  #pending = 0;

  constructor(options: HistoryRecorderOptions) {
    this.#now = options.now;
    this.#max = options.maxOperations ?? MAX_OPERATIONS_DEFAULT;
  }

  /** Operations invoked so far. */
  get size(): number {
    return this.#records.length;
  }

  /** Operations invoked but not yet completed. */
  get pending(): number {
    return this.#pending;
  }

  /** Records an invocation; returns the handle to complete it with. */
  invoke(client: number | string, op: string, key: string, input: HistoryValue = null): number {
    if (this.#records.length >= this.#max) throw new ResourceExhaustedError("history recorder", this.#max);
    const call = this.#now();
    if (!Number.isFinite(call)) throw new InvalidArgumentError(`history clock returned ${call}`);
    this.#records.push({ client, op, key, input, output: null, call, return: null, status: "pending" });
    this.#pending++;
    return this.#records.length - 1;
  }

  /** The operation took effect and returned `output`. */
  ok(id: number, output: HistoryValue = null): void {
    const r = this.#complete(id);
    r.output = output;
    r.return = this.#returnTime(r);
    r.status = "ok";
  }

  /** The operation definitely did not take effect (e.g. rejected by a non-leader before proposing). */
  fail(id: number): void {
    const r = this.#complete(id);
    r.return = this.#returnTime(r);
    r.status = "fail";
  }

  /** The outcome is unknown (timeout, connection lost after sending). */
  unknown(id: number): void {
    this.#complete(id).status = "unknown";
  }

  /** A snapshot of the history so far; pending operations appear as unknown. */
  records(): readonly HistoryRecord[] {
    return this.#records.map((r) => ({
      ...r,
      return: r.status === "pending" || r.status === "unknown" ? null : r.return,
      status: r.status === "pending" ? "unknown" : r.status,
    }));
  }

  #complete(id: number): MutableRecord {
    const r = this.#records[id];
    if (r === undefined) throw new InvalidArgumentError(`no recorded operation with id ${id}`);
    if (r.status !== "pending")
      throw new InvalidArgumentError(`operation ${id} was already completed (${r.status})`);
    this.#pending--;
    return r;
  }

  #returnTime(r: MutableRecord): number {
    const t = this.#now();
    if (!(t >= r.call))
      throw new InvalidArgumentError(`history clock went backwards: return ${t} < call ${r.call}`);
    return t;
  }
}

function encodeValue(v: HistoryValue): unknown {
  if (v instanceof Uint8Array)
    return { $bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") };
  if (Array.isArray(v)) return v.map(encodeValue);
  if (v !== null && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = encodeValue(x);
    return out;
  }
  return v;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function decodeValue(v: unknown, line: number): HistoryValue {
  if (v === null || typeof v === "boolean" || typeof v === "number" || typeof v === "string") return v;
  if (Array.isArray(v)) return v.map((x) => decodeValue(x, line));
  if (typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length === 1 && entries[0]![0] === "$bytes") {
      const b64 = entries[0]![1];
      if (typeof b64 !== "string" || b64.length % 4 !== 0 || !BASE64.test(b64)) {
        throw new HistoryFormatError(line, `"$bytes" must hold base64 text`);
      }
      return new Uint8Array(Buffer.from(b64, "base64"));
    }
    const out: Record<string, HistoryValue> = {};
    for (const [k, x] of entries) out[k] = decodeValue(x, line);
    return out;
  }
  throw new HistoryFormatError(line, `unsupported value ${String(v)}`);
}

/** One record as one JSON line (no trailing newline). Keys always in the documented order. */
export function formatRecord(r: HistoryRecord): string {
  return JSON.stringify({
    client: r.client,
    op: r.op,
    key: r.key,
    input: encodeValue(r.input),
    output: encodeValue(r.output),
    call: r.call,
    return: r.return,
    status: r.status,
  });
}

/** A whole history as JSON lines, each line terminated by "\n". */
export function formatHistory(records: readonly HistoryRecord[]): string {
  let out = "";
  for (const r of records) out += `${formatRecord(r)}\n`;
  return out;
}

/** Parses one JSON line into a record, validating every field. */
export function parseRecord(text: string, line = 0): HistoryRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new HistoryFormatError(line, `not JSON (${(err as Error).message})`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new HistoryFormatError(line, "expected a JSON object");
  }
  const o = raw as Record<string, unknown>;
  const { client, op, key, call, status } = o;
  const ret = o.return;
  if (typeof client !== "number" && typeof client !== "string") {
    throw new HistoryFormatError(line, `"client" must be a number or string`);
  }
  if (typeof op !== "string" || op === "")
    throw new HistoryFormatError(line, `"op" must be a non-empty string`);
  if (typeof key !== "string") throw new HistoryFormatError(line, `"key" must be a string`);
  if (typeof call !== "number" || !Number.isFinite(call)) {
    throw new HistoryFormatError(line, `"call" must be a finite number`);
  }
  if (status !== "ok" && status !== "fail" && status !== "unknown") {
    throw new HistoryFormatError(line, `"status" must be "ok", "fail" or "unknown"`);
  }
  if (ret !== null && (typeof ret !== "number" || !Number.isFinite(ret))) {
    throw new HistoryFormatError(line, `"return" must be a finite number or null`);
  }
  if (status === "ok" && ret === null)
    throw new HistoryFormatError(line, `an "ok" operation needs a "return" time`);
  if (ret !== null && ret < call)
    throw new HistoryFormatError(line, `"return" (${ret}) is before "call" (${call})`);
  return {
    client,
    op,
    key,
    input: decodeValue(o.input ?? null, line),
    output: decodeValue(o.output ?? null, line),
    call,
    // An unknown outcome has no return time, whatever the writer put there.
    return: status === "unknown" ? null : ret,
    status,
  };
}

/** Parses JSON lines; blank lines are skipped, errors name the 1-based line. */
export function parseHistory(text: string): HistoryRecord[] {
  const out: HistoryRecord[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.trim();
    if (l !== "") out.push(parseRecord(l, i + 1));
  }
  return out;
}

export async function writeHistoryFile(path: string, records: readonly HistoryRecord[]): Promise<void> {
  await writeFile(path, formatHistory(records), "utf8");
}

export async function readHistoryFile(path: string): Promise<HistoryRecord[]> {
  return parseHistory(await readFile(path, "utf8"));
}
