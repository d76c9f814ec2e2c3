#!/usr/bin/python3
# XEP-0077 account self-service with an independent client: slixmpp (Debian's python3-slixmpp)
# and its xep_0077 plugin.
#
#   /usr/bin/python3 test/im/slix_account.py --jid alice@localhost --password pw --port 5222 \
#       --ca /path/ca.crt --action get|change-password|cancel [--new PW] [--to localhost]
#
# Logs in over STARTTLS (certificate verified against --ca), then:
#   get              get_registration(): {"ok": true, "registered": true, "username": "alice"}
#   change-password  change_password(--new, jid=--to): {"ok": true, "type": "result"}
#                    or {"ok": false, "condition": "not-acceptable", "text": "..."}
#   cancel           cancel_registration(): {"ok": true, "type": "result", "streamError": "not-authorized",
#                    "disconnected": true}
# and prints exactly one JSON line on stdout. Exit status 0 when ok. slixmpp's log goes to stderr.
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'clients'))
import slixrun  # noqa: E402
import slixmpp
from slixmpp.exceptions import IqError, IqTimeout


class Client(slixmpp.ClientXMPP):
    def __init__(self, args):
        super().__init__(args.jid, args.password)
        self.args = args
        self.result: dict = {"ok": False, "error": "disconnected before the session started"}
        self.done = asyncio.get_event_loop().create_future()
        self.stream_error = None
        self.gone = asyncio.get_event_loop().create_future()
        self.register_plugin("xep_0077")
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("failed_all_auth", self.on_failed_auth)
        self.add_event_handler("stream_error", self.on_stream_error)
        self.add_event_handler("disconnected", self.on_disconnected)

    def finish(self, result: dict) -> None:
        if not self.done.done():
            self.result = result
            self.done.set_result(True)

    async def on_session_start(self, _event) -> None:
        reg = self.plugin["xep_0077"]
        try:
            if self.args.action == "get":
                iq = await reg.get_registration(jid=self.args.to, timeout=10)
                q = iq["register"]
                self.finish({"ok": True, "registered": bool(q["registered"]), "username": q["username"],
                             "instructions": q["instructions"]})
            elif self.args.action == "change-password":
                iq = await reg.change_password(self.args.new, jid=self.args.to, timeout=10)
                self.finish({"ok": True, "type": iq["type"]})
            elif self.args.action == "cancel":
                iq = await reg.cancel_registration(jid=self.args.to, timeout=10)
                # XEP-0077 §3.2: the server then ends the stream with <not-authorized/>.
                try:
                    await asyncio.wait_for(asyncio.shield(self.gone), timeout=10)
                except asyncio.TimeoutError:
                    pass
                self.finish({"ok": True, "type": iq["type"], "streamError": self.stream_error,
                             "disconnected": self.gone.done()})
        except IqError as e:
            self.finish({"ok": False, "condition": e.iq["error"]["condition"], "text": e.iq["error"]["text"],
                         "echoedPassword": bool(self.args.new) and self.args.new in str(e.iq)})
        except IqTimeout:
            self.finish({"ok": False, "error": "timeout"})
        self.disconnect()

    def on_failed_auth(self, _event) -> None:
        self.finish({"ok": False, "error": "auth failed"})
        self.disconnect()

    def on_stream_error(self, e) -> None:
        self.stream_error = e["condition"]

    def on_disconnected(self, _e) -> None:
        if not self.gone.done():
            self.gone.set_result(True)
        if not self.done.done() and self.args.action != "cancel":
            self.finish({"ok": False, "error": "disconnected", "streamError": self.stream_error})


def main() -> int:
    p = slixrun.parser()
    p.add_argument("--action", choices=["get", "change-password", "cancel"], required=True)
    p.add_argument("--new", default=None)
    p.add_argument("--to", default=None)
    p.add_argument("--timeout", type=float, default=20)
    args = p.parse_args()
    return slixrun.main(args, Client)


if __name__ == "__main__":
    sys.exit(main())
