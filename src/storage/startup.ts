// Opening PostgreSQL at server start-up when it may not be there yet: the machine boots and Amsel
// starts before PostgreSQL, or PostgreSQL is restarting. Exiting would make the supervisor
// restart Amsel in a loop; instead the start waits, retrying with backoff, until the database
// answers, then carries on (migrations, listeners). A *configuration* error (wrong password,
// unknown database or role, a bad URL, no permission) is not waited for: it fails at once, with
// a message naming the config key.
//
// What counts as "not there yet" is what faults.ts classifies as a storage fault (refused, reset,
// timed out, host unreachable, "starting up"/"shutting down", too many connections...), applied
// to the engine's own error: the fault driver reports *every* failed connection checkout as
// unavailable (a password changed under a running server), which at start-up is a config error.
//
// SQLite is opened as before: a missing or unwritable file is a configuration error.

import { openStorage, StorageOpenError, redactUrl, type OpenOptions, type Storage, type StorageConfig } from './db.ts';
import { storageFault, StorageUnavailableError } from './faults.ts';

/** The config key of the PostgreSQL URL, named in the messages of configuration errors. */
export const STORAGE_URL_KEY = 'storage.url';
/** First retry delay while PostgreSQL is unreachable at start-up; doubles per attempt... */
export const STARTUP_RETRY_INITIAL_MS = 1000;
/** ...up to this. */
export const STARTUP_RETRY_MAX_MS = 30_000;
/** At most one "still waiting" line per this interval (unless the error changes). */
export const STARTUP_WAIT_LOG_INTERVAL_MS = 60_000;

/** The log lines of the wait (operators and tests look for them). */
export const STARTUP_WAIT_MSG = 'PostgreSQL unreachable: waiting for it before starting';
export const STARTUP_CONNECTED_MSG = 'PostgreSQL reachable: starting';

export interface StartupWaitOptions {
  log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  /** Stops the wait (SIGTERM): the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Tests: shorter delays, a stand-in for openStorage. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  logIntervalMs?: number;
  open?: typeof openStorage;
}

/**
 * The connection fault behind a failed openStorage (the database cannot be reached or is not
 * ready: waiting helps), or undefined for anything else (configuration, a migration, a newer
 * database: waiting does not help).
 */
export function startupFault(err: unknown): StorageUnavailableError | undefined {
  // StorageOpenError / MigrationError → StorageUnavailableError → the engine's error.
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof StorageUnavailableError) return storageFault(e.cause);
    if (e.name === 'UnknownMigrationError') return undefined;
  }
  return undefined;
}

/** host:port of a PostgreSQL URL (never the user or password), for the log. */
export function pgTarget(url: string): string {
  try {
    // `postgres://user:pw@/db?host=/run/postgresql` (a socket, no host) is not a WHATWG URL.
    const u = URL.canParse(url) ? new URL(url) : new URL(url.replace(/^([a-z]+:\/\/)[^@/]*@/i, '$1'));
    // `?host=` (a Unix socket directory, or a host) overrides the authority, as in libpq.
    const host = u.searchParams.get('host') || u.hostname || process.env.PGHOST || 'localhost';
    const port = u.searchParams.get('port') || u.port || process.env.PGPORT || '5432';
    return `${host}:${port}`;
  } catch {
    return '<unparsable URL>';
  }
}

/**
 * A failed PostgreSQL open that waiting does not fix (startupFault() is undefined), said as what
 * to do: the engine's message and code, and the key to check (`storage.url`, password redacted).
 * Anything but a StorageOpenError (a migration error says what to do itself) is returned as it is.
 */
export function configurationError(url: string, err: unknown): unknown {
  if (!(err instanceof StorageOpenError)) return err;
  const root = rootCause(err);
  return new StorageOpenError(
    `cannot open PostgreSQL ${redactUrl(url)}: ${root.message}${root.code ? ` (${root.code})` : ''}; check ${STORAGE_URL_KEY}`,
    { cause: err },
  );
}

/** The engine's own error and its code, for a configuration error's message. */
function rootCause(err: unknown): { message: string; code?: string } {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && e.cause instanceof Error && depth < 5; depth++) e = e.cause;
  const code = (e as { code?: unknown })?.code;
  return { message: e instanceof Error ? e.message : String(e), code: typeof code === 'string' ? code : undefined };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** One attempt, abandoned at once on abort (a storage it opens later is closed). */
function attempt(open: typeof openStorage, cfg: StorageConfig, opts: OpenOptions, signal?: AbortSignal): Promise<Storage> {
  const p = open(cfg, opts);
  if (!signal) return p;
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      reject(signal.reason);
      p.then((s) => s.close(), () => undefined).catch(() => undefined);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (s) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) return void s.close().catch(() => undefined);
        resolve(s);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/**
 * openStorage for the server's start: PostgreSQL that cannot be reached (or is starting up) is
 * waited for, retrying with backoff (1 s doubling to 30 s) forever; one warning when the wait
 * begins, then at most one line a minute (or when the error changes), and one line when it
 * connects. Configuration errors throw StorageOpenError at once, naming `storage.url`; so do
 * migration errors (their own types). SQLite: openStorage as it is.
 */
export async function openStorageWhenReachable(cfg: StorageConfig, opts: OpenOptions, wait: StartupWaitOptions): Promise<Storage> {
  const open = wait.open ?? openStorage;
  const signal = wait.signal;
  signal?.throwIfAborted();
  if (cfg.type !== 'postgres') return open(cfg, opts);

  const database = pgTarget(cfg.url);
  const initial = wait.initialDelayMs ?? STARTUP_RETRY_INITIAL_MS;
  const max = wait.maxDelayMs ?? STARTUP_RETRY_MAX_MS;
  const logInterval = wait.logIntervalMs ?? STARTUP_WAIT_LOG_INTERVAL_MS;
  const since = Date.now();
  let delay = initial;
  let failures = 0;
  let loggedAt = 0;
  let loggedCode: string | undefined;
  for (;;) {
    let storage: Storage;
    try {
      storage = await attempt(open, cfg, opts, signal);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const fault = startupFault(err);
      if (fault === undefined) {
        throw configurationError(cfg.url, err); // UnknownMigrationError, MigrationError: as they are
      }
      failures++;
      const now = Date.now();
      if (failures === 1 || fault.code !== loggedCode || now - loggedAt >= logInterval) {
        const cause = fault.cause instanceof Error ? fault.cause.message : String(fault.cause);
        wait.log.warn(
          { database, code: fault.code, reason: cause, attempts: failures, waitingS: Math.round((now - since) / 1000), retryInMs: delay },
          STARTUP_WAIT_MSG,
        );
        loggedAt = now;
        loggedCode = fault.code;
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, max);
      continue;
    }
    if (failures > 0) {
      wait.log.info({ database, attempts: failures + 1, waitedS: Math.round((Date.now() - since) / 1000) }, STARTUP_CONNECTED_MSG);
    }
    return storage;
  }
}
