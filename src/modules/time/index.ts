// XEP-0202 Entity Time: the server answers urn:xmpp:time with its UTC time and its time zone
// offset (§2), both in the XEP-0082 formats.
import { defineModule } from '../../core/modules/define.ts';
import { x } from '../../xml/index.ts';

export const NS_TIME = 'urn:xmpp:time';

/** XEP-0082 §2.1 TZD as ±hh:mm for a Date's local offset (Date.getTimezoneOffset is UTC − local, in minutes). */
export function tzo(d: Date): string {
  const east = -d.getTimezoneOffset();
  const abs = Math.abs(east);
  return `${east < 0 ? '-' : '+'}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/** XEP-0082 §3.2 DateTime in UTC: CCYY-MM-DDThh:mm:ss.sssZ. */
export function utc(d: Date): string {
  return d.toISOString();
}

export default defineModule({
  name: 'time',
  specs: [{ xep: 202, version: '2.0', status: 'complete', note: 'the server only' }],
  defaultEnabled: true,
  setup(ctx) {
    // §4: advertise urn:xmpp:time.
    ctx.disco.feature(NS_TIME);
    ctx.iq.get(NS_TIME, 'time', () => {
      const now = new Date();
      // §2: <tzo/> and <utc/> are both REQUIRED in a result.
      return x('time', { xmlns: NS_TIME }, x('tzo', null, tzo(now)), x('utc', null, utc(now)));
    });
  },
});
