import type { Logger } from "../../src/transport/transport.ts";

export interface LogRecord {
  readonly level: "debug" | "info" | "warn" | "error";
  readonly obj: object;
  readonly msg: string;
}

/** A logger that records everything, for asserting that a failure was logged clearly. */
export function captureLogger(): Logger & {
  readonly records: LogRecord[];
  has(level: string, re: RegExp): boolean;
} {
  const records: LogRecord[] = [];
  const at =
    (level: LogRecord["level"]) =>
    (obj: object, msg: string): void => {
      records.push({ level, obj, msg });
    };
  return {
    records,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    has: (level, re) =>
      records.some((r) => r.level === level && re.test(`${r.msg} ${JSON.stringify(r.obj)}`)),
  };
}

/** Polls `cond` until it holds; fails with `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
