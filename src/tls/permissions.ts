// Permission checks for secret files (TLS private keys, the installation secret, the database)
// and the directories holding them. Warnings, not refusals: Debian's ssl-cert group (keys 0640
// root:ssl-cert, the server's user in that group) and container secret mounts (0644 root) are
// common and deliberate, and a server that refuses to start over them does more harm than good.
import { stat } from 'node:fs/promises';
import path from 'node:path';

/** The server process's identity: who may legitimately own or read its secrets. */
export interface ProcessIdentity {
  uid: number;
  /** Primary and supplementary groups. */
  gids: number[];
}

export function currentIdentity(): ProcessIdentity {
  if (typeof process.getuid !== 'function') return { uid: -1, gids: [] };
  return { uid: process.getuid(), gids: [process.getgid!(), ...(process.getgroups?.() ?? [])] };
}

interface StatLike { mode: number; uid: number; gid: number }

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

/**
 * Problems with a secret file's permissions (empty when fine):
 * - readable or writable by every user (any "other" bit);
 * - writable by its group;
 * - readable by a group the server is not in (nobody needs that);
 * - owned by another user than the server's or root (that user can read and replace it).
 */
export function secretFileProblems(st: StatLike, me: ProcessIdentity): string[] {
  const out: string[] = [];
  const mode = octal(st.mode);
  if (st.mode & 0o006) out.push(`${st.mode & 0o004 ? 'readable' : 'writable'} by every user on this machine (mode ${mode}); chmod 600 it`);
  if (st.mode & 0o020) out.push(`writable by group ${st.gid} (mode ${mode}): its members can replace it`);
  else if (st.mode & 0o040 && !me.gids.includes(st.gid)) {
    out.push(`readable by group ${st.gid}, which the server's user is not in (mode ${mode}); chmod 600 it`);
  }
  if (me.uid >= 0 && st.uid !== me.uid && st.uid !== 0) {
    out.push(`owned by uid ${st.uid}, not by the server's user (uid ${me.uid}) or root: that user can read and replace it`);
  }
  return out;
}

/** Problems with a directory that holds secrets: open to every user, or writable by its group. */
export function secretDirProblems(st: StatLike): string[] {
  const mode = octal(st.mode);
  if (st.mode & 0o002 && !(st.mode & 0o1000)) return [`writable by every user (mode ${mode}): anyone can replace the files in it`];
  if (st.mode & 0o007) return [`open to every user (mode ${mode}); chmod 700 it (or 750)`];
  if (st.mode & 0o020) return [`writable by group ${st.gid} (mode ${mode}): its members can replace the files in it`];
  return [];
}

export interface PermissionWarning { file: string; message: string }

/** Checks one secret file and the directory it is in; a file that does not exist is no problem here. */
export async function checkSecretFile(file: string, what: string, me: ProcessIdentity = currentIdentity()): Promise<PermissionWarning[]> {
  const out: PermissionWarning[] = [];
  const st = await stat(file).catch(() => undefined);
  if (!st) return out;
  for (const m of secretFileProblems(st, me)) out.push({ file, message: `${what} ${file} is ${m}` });
  const dir = path.dirname(file);
  const dst = await stat(dir).catch(() => undefined);
  // Only the "anyone can replace it" case: a readable directory of a private file is fine.
  if (dst && dst.mode & 0o002 && !(dst.mode & 0o1000)) {
    out.push({ file: dir, message: `the directory of ${what} ${file} is writable by every user (mode ${octal(dst.mode)}): anyone can replace the file` });
  }
  return out;
}

/** Checks a directory holding secrets (the data directory). */
export async function checkSecretDir(dir: string, what: string): Promise<PermissionWarning[]> {
  const st = await stat(dir).catch(() => undefined);
  if (!st) return [];
  return secretDirProblems(st).map((m) => ({ file: dir, message: `${what} ${dir} is ${m}` }));
}
