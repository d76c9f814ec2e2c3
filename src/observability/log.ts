// Structured logging (pino). Privacy rule: never log message bodies, passwords or tokens;
// log stanza kinds, session ids and JIDs only. The redact list is a second line of defence.
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { Writable } from 'node:stream';

export type { Logger };

export interface LogOptions {
  level: LevelWithSilent;
  format: 'json' | 'pretty';
  /** Where to write; defaults to stdout (systemd's journal picks it up). */
  destination?: NodeJS.WritableStream;
}

const REDACT = [
  'password', '*.password', 'token', '*.token', 'body', '*.body', 'secret', '*.secret',
  'credentials', '*.credentials', 'authorization', '*.authorization',
];

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** A human-readable line format for terminals: "12:00:01 INFO  msg key=value". */
function prettyStream(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        try {
          const { time, level, msg, pid: _pid, hostname: _h, ...rest } = JSON.parse(line) as Record<string, unknown>;
          const t = new Date(Number(time)).toISOString().slice(11, 19);
          const extra = Object.entries(rest)
            .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
            .join(' ');
          out.write(`${t} ${(LEVEL_NAMES[Number(level)] ?? String(level)).padEnd(5)} ${String(msg ?? '')}${extra ? ' ' + extra : ''}\n`);
        } catch {
          out.write(line + '\n');
        }
      }
      cb();
    },
  });
}

export function createLogger(opts: LogOptions): Logger {
  const out = opts.destination ?? process.stdout;
  const dest = opts.format === 'pretty' ? prettyStream(out) : out;
  return pino(
    {
      level: opts.level,
      base: undefined,
      redact: { paths: REDACT, censor: '[redacted]' },
      formatters: opts.format === 'pretty' ? {} : { level: (label) => ({ level: label }) },
      timestamp: opts.format === 'pretty' ? pino.stdTimeFunctions.epochTime : pino.stdTimeFunctions.isoTime,
    },
    dest as pino.DestinationStream,
  );
}

/** A logger that drops everything (tests, CLI commands). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
