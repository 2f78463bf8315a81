/** A process environment as the readers see it (process.env, or a pod spec's variables as a map). */
export type Env = Readonly<Record<string, string | undefined>>;

/** What a default may depend on: the container's CPU limit and the session count read before it. */
export interface EnvContext {
  cpus: number;
  sessions: number;
}

/**
 * One environment variable, read and written the same way by every program:
 * the building block of the server's contract (crds/server-env.ts) and of
 * the operator's own configuration.
 */
export interface ServerVariable<T> {
  readonly name: string;
  /** The README's default column (Markdown). */
  readonly shownDefault: string;
  /** The README's meaning column (Markdown). */
  readonly doc: string;
  /**
   * The value in `env` (blank counts as unset), or the default; throws an
   * Error naming the variable and what it expects. `ctx` is needed only by
   * defaults drawn from the container (the server's thread counts).
   */
  read: (env: Env, ctx?: EnvContext) => T;
  /** The text the operator writes for a value. */
  write: (value: T) => string;
}

/** A variable's trimmed text; blank counts as unset. */
export const raw = (env: Env, name: string): string | undefined => {
  const v = env[name]?.trim();
  return v === undefined || v === '' ? undefined : v;
};
const code = (v: string | number) => `\`${v}\``;

interface IntegerBounds {
  min: number;
  max?: number;
  doc: string;
  shownDefault?: string;
}

/** A set integer variable's value, or an error naming it and its bounds. */
function parseInteger(env: Env, name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(
      `${name}=${env[name]}: expected an integer ` +
        `${max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `between ${min} and ${max}`}`,
    );
  }
  return n;
}

/** An integer variable between min and max, with a default that may depend on the context. */
export function integer(
  name: string,
  fallback: number | ((ctx: EnvContext) => number),
  { min, max = Number.MAX_SAFE_INTEGER, doc, shownDefault }: IntegerBounds,
): ServerVariable<number> {
  return {
    name,
    doc,
    shownDefault: shownDefault ?? code(fallback as number),
    read(env, ctx) {
      const text = raw(env, name);
      if (text !== undefined) return parseInteger(env, name, text, min, max);
      if (typeof fallback === 'number') return fallback;
      if (ctx === undefined) throw new Error(`${name}: its default depends on the container; read it with a context`);
      return fallback(ctx);
    },
    write: String,
  };
}

/** An integer variable between min and max that may be left unset (then undefined: the feature is off). */
export function optionalInteger(
  name: string,
  { min, max = Number.MAX_SAFE_INTEGER, doc, shownDefault = 'unset' }: IntegerBounds,
): ServerVariable<number | undefined> {
  return {
    name,
    doc,
    shownDefault,
    read(env) {
      const text = raw(env, name);
      return text === undefined ? undefined : parseInteger(env, name, text, min, max);
    },
    write: (v) => (v === undefined ? '' : String(v)),
  };
}

/** A text variable; unset reads as the fallback (undefined: the program decides, as documented). */
export function text<T extends string | undefined>(
  name: string,
  fallback: T,
  { doc, shownDefault }: { doc: string; shownDefault: string },
): ServerVariable<string | T> & { read(env: Env): string | T } {
  return { name, doc, shownDefault, read: (env: Env) => raw(env, name) ?? fallback, write: String };
}
