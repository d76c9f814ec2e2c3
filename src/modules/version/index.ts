// XEP-0092 Software Version: the server answers jabber:iq:version about itself.
//
// Hiding (config `hideVersion`, `hideOs`): §2 makes <name/> and <version/> REQUIRED in a result,
// so a server that will not tell its version cannot answer at all; with hideVersion the
// namespace is neither advertised nor answered (service-unavailable, as §3 says for an entity
// that does not support it). The operating system is OPTIONAL (§2) and hidden by default:
// §5 asks for a way to disable sharing it, and a public service has no reason to share it.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { z } from 'zod';
import { defineModule } from '../../core/modules/define.ts';
import { x } from '../../xml/index.ts';

export const NS_VERSION = 'jabber:iq:version';

const VersionConfig = z.strictObject({
  hideVersion: z.boolean().default(false)
    .describe('Do not answer software version requests at all (XEP-0092 requires the version in an answer).'),
  hideOs: z.boolean().default(true)
    .describe('Leave out the operating system (XEP-0092 §5).'),
});

/** Amsel's version, from package.json (read once per load). */
export async function amselVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

export default defineModule({
  name: 'version',
  specs: [{ xep: 92, version: '1.1', status: 'complete', note: 'the server only; version and OS can be hidden' }],
  defaultEnabled: true,
  config: VersionConfig,
  async setup(ctx) {
    if (ctx.config.hideVersion) return;
    const version = await amselVersion();
    const osName = ctx.config.hideOs ? undefined : `${os.type()} ${os.release()}`;
    ctx.disco.feature(NS_VERSION);
    ctx.iq.get(NS_VERSION, 'query', () =>
      x('query', { xmlns: NS_VERSION }, x('name', null, 'Amsel'), x('version', null, version), osName ? x('os', null, osName) : null));
  },
});
