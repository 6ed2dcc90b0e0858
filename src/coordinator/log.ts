/**
 * Structured logs: one JSON object per line on stderr ({time, level, component, msg, …fields}).
 * Only public data is ever logged: key ids, contexts, signer indices, statuses, reasons.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function jsonLogger(component: string, minLevel: Level = 'info', write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < ORDER[minLevel]) return;
    const entry: Record<string, unknown> = { time: new Date().toISOString(), level, component, msg };
    if (fields) for (const [k, v] of Object.entries(fields)) if (v !== undefined) entry[k] = v instanceof Error ? v.message : v;
    write(JSON.stringify(entry) + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
