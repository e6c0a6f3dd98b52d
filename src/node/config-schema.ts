/**
 * A tiny schema language for configuration: every key has a type, bounds and
 * a default, so one table gives defaults, validation with messages that name
 * the key, and the environment variable names (`TSRAFT_RAFT_TICK_MS`).
 */

import { ConfigError } from "../errors.ts";

export type FieldSpec =
  | {
      readonly type: "int";
      readonly default?: number;
      readonly min?: number;
      readonly max?: number;
      readonly doc: string;
    }
  | { readonly type: "string"; readonly default?: string; readonly doc: string }
  | { readonly type: "bool"; readonly default?: boolean; readonly doc: string }
  | {
      readonly type: "enum";
      readonly values: readonly string[];
      readonly default?: string;
      readonly doc: string;
    }
  | { readonly type: "strings"; readonly default?: readonly string[]; readonly doc: string }
  /** A map from node id to address, given as an object or as "1=host:port,2=host:port". */
  | { readonly type: "peers"; readonly default?: Readonly<Record<string, string>>; readonly doc: string };

export type Schema = { readonly [key: string]: FieldSpec | Schema };

function isField(v: FieldSpec | Schema): v is FieldSpec {
  return typeof (v as FieldSpec).type === "string" && typeof (v as FieldSpec).doc === "string";
}

type Obj = Record<string, unknown>;

/** Defaults for every key that has one. */
export function defaultsOf(schema: Schema): Obj {
  const out: Obj = {};
  for (const [k, spec] of Object.entries(schema)) {
    if (isField(spec)) {
      if (spec.default !== undefined) out[k] = spec.default;
    } else out[k] = defaultsOf(spec);
  }
  return out;
}

/**
 * Merges `over` into `base`: the sections of `schema` merge key by key, any
 * other value (a field, a peer map among them) replaces what was there.
 */
export function merge(base: Obj, over: Obj, schema: Schema): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const spec = Object.hasOwn(schema, k) ? schema[k] : undefined;
    const b = out[k];
    if (spec && !isField(spec) && isPlainObject(v) && isPlainObject(b)) out[k] = merge(b, v, spec);
    // Defined, not assigned: a "__proto__" key (JSON.parse makes one) stays a key, which
    // validation then refuses, instead of becoming the object's prototype.
    else Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** An object literal or a parsed table, not a Date, array, buffer or class instance. */
function isPlainObject(v: unknown): v is Obj {
  if (typeof v !== "object" || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function envName(path: readonly string[]): string {
  return `TSRAFT_${path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()).join("_")}`;
}

/** Every environment variable the schema reads, with its key path (for docs and `--help`). */
export function envVars(
  schema: Schema,
  prefix: readonly string[] = [],
): { name: string; key: string; doc: string }[] {
  const out: { name: string; key: string; doc: string }[] = [];
  for (const [k, spec] of Object.entries(schema)) {
    const path = [...prefix, k];
    if (isField(spec)) out.push({ name: envName(path), key: path.join("."), doc: spec.doc });
    else out.push(...envVars(spec, path));
  }
  return out;
}

/**
 * Reads `TSRAFT_*` variables into a partial config (values parsed by the
 * field's type). A variable the schema does not know is refused when it looks
 * meant for it: it names a section (`TSRAFT_RAFT_…`), or it differs from a
 * known name only in its underscores (`TSRAFT_RAFT_TICKMS`). Others
 * (`TSRAFT_LOG_LEVEL`, a tool's own) are left alone.
 */
export function fromEnv(schema: Schema, env: Readonly<Record<string, string | undefined>>): Obj {
  const known = envVars(schema);
  const names = new Set(known.map((v) => v.name));
  const squash = (n: string) => n.replace(/_/g, "");
  const bySquashed = new Map(known.map((v) => [squash(v.name), v.name]));
  const sections = Object.entries(schema)
    .filter(([, spec]) => !isField(spec))
    .map(([k]) => envName([k]));
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || !name.startsWith("TSRAFT_") || names.has(name)) continue;
    const meant = bySquashed.get(squash(name));
    if (meant) throw new ConfigError(name, `unknown environment variable; did you mean ${meant}?`);
    const section = sections.find((sec) => name === sec || name.startsWith(`${sec}_`));
    if (section) {
      const siblings = known.filter((v) => v.name.startsWith(`${section}_`)).map((v) => v.name);
      throw new ConfigError(name, `unknown environment variable (known: ${siblings.join(", ")})`);
    }
  }
  return readEnv(schema, env, []);
}

function readEnv(
  schema: Schema,
  env: Readonly<Record<string, string | undefined>>,
  prefix: readonly string[],
): Obj {
  const out: Obj = {};
  for (const [k, spec] of Object.entries(schema)) {
    const path = [...prefix, k];
    if (!isField(spec)) {
      const sub = readEnv(spec, env, path);
      if (Object.keys(sub).length > 0) out[k] = sub;
      continue;
    }
    const raw = env[envName(path)];
    if (raw === undefined) continue;
    out[k] = parseScalar(spec, raw, `${path.join(".")} (from ${envName(path)})`);
  }
  return out;
}

function parseScalar(spec: FieldSpec, raw: string, key: string): unknown {
  switch (spec.type) {
    case "int": {
      if (!/^-?\d+$/.test(raw)) throw new ConfigError(key, `expected an integer, got "${raw}"`);
      return Number(raw);
    }
    case "bool":
      if (/^(true|1|yes|on)$/i.test(raw)) return true;
      if (/^(false|0|no|off)$/i.test(raw)) return false;
      throw new ConfigError(key, `expected true or false, got "${raw}"`);
    case "strings":
      return raw
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
    default:
      return raw;
  }
}

/** Validates a merged config against the schema: unknown keys, types, bounds. Returns it typed. */
export function validate<T>(schema: Schema, value: unknown, prefix = ""): T {
  if (!isPlainObject(value)) {
    throw new ConfigError(
      prefix.slice(0, -1) || "(root)",
      `must be an object (a table), got ${String(value)}`,
    );
  }
  for (const k of Object.keys(value)) {
    if (!Object.hasOwn(schema, k)) {
      const known = Object.keys(schema).join(", ");
      throw new ConfigError(prefix + k, `unknown key (known keys: ${known})`);
    }
  }
  const out: Obj = {};
  for (const [k, spec] of Object.entries(schema)) {
    const key = prefix + k;
    const v = value[k];
    if (!isField(spec)) {
      // A section given as null, a number or a list is an error, not "all defaults".
      out[k] = validate(spec, v === undefined ? {} : v, `${key}.`);
      continue;
    }
    if (v === undefined) continue;
    out[k] = checkField(spec, v, key);
  }
  return out as T;
}

function checkField(spec: FieldSpec, v: unknown, key: string): unknown {
  switch (spec.type) {
    case "int":
      if (typeof v !== "number" || !Number.isSafeInteger(v))
        throw new ConfigError(key, `expected an integer, got ${JSON.stringify(v)}`);
      if (spec.min !== undefined && v < spec.min)
        throw new ConfigError(key, `must be >= ${spec.min}, got ${v}`);
      if (spec.max !== undefined && v > spec.max)
        throw new ConfigError(key, `must be <= ${spec.max}, got ${v}`);
      return v;
    case "string":
      if (typeof v !== "string") throw new ConfigError(key, `expected a string, got ${JSON.stringify(v)}`);
      return v;
    case "bool":
      if (typeof v !== "boolean")
        throw new ConfigError(key, `expected true or false, got ${JSON.stringify(v)}`);
      return v;
    case "enum":
      if (typeof v !== "string" || !spec.values.includes(v)) {
        throw new ConfigError(key, `expected one of ${spec.values.join(", ")}, got ${JSON.stringify(v)}`);
      }
      return v;
    case "strings":
      if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) {
        throw new ConfigError(key, `expected a list of strings, got ${JSON.stringify(v)}`);
      }
      return v;
    case "peers":
      return parsePeers(v, key);
  }
}

/** Parses `{ "1": "host:port" }` or `"1=host:port,2=host:port"` into a map id → address. */
export function parsePeers(v: unknown, key: string): Record<string, string> {
  let entries: [string, unknown][];
  if (typeof v === "string") {
    entries = v
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0)
      .map((pair) => {
        const i = pair.indexOf("=");
        if (i <= 0) throw new ConfigError(key, `expected id=host:port, got "${pair}"`);
        return [pair.slice(0, i).trim(), pair.slice(i + 1).trim()];
      });
  } else if (isPlainObject(v)) {
    entries = Object.entries(v);
  } else {
    throw new ConfigError(key, `expected a map of node id to address, got ${JSON.stringify(v)}`);
  }
  const out: Record<string, string> = {};
  const owner = new Map<string, string>();
  for (const [id, addr] of entries) {
    if (!/^[1-9]\d*$/.test(id) || !Number.isSafeInteger(Number(id)))
      throw new ConfigError(`${key}.${id}`, "node ids are positive integers");
    if (Object.hasOwn(out, id)) throw new ConfigError(`${key}.${id}`, "node id given twice");
    if (typeof addr !== "string") {
      throw new ConfigError(`${key}.${id}`, `expected host:port, got ${JSON.stringify(addr)}`);
    }
    checkAddress(addr, `${key}.${id}`, 1);
    const other = owner.get(addr);
    if (other !== undefined) throw new ConfigError(`${key}.${id}`, `address ${addr} is node ${other}'s too`);
    owner.set(addr, id);
    out[id] = addr;
  }
  return out;
}

/** Checks "host:port" with a port in [minPort, 65535] (0 lets a listener pick one). */
export function checkAddress(addr: string, key: string, minPort: 0 | 1): void {
  const m = /^[^\s:]+:(\d{1,5})$/.exec(addr);
  if (!m) throw new ConfigError(key, `expected host:port, got ${JSON.stringify(addr)}`);
  const port = Number(m[1]);
  if (port < minPort || port > 65535) {
    throw new ConfigError(key, `port must be ${minPort}..65535, got ${JSON.stringify(addr)}`);
  }
}
