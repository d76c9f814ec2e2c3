#!/usr/bin/python3
# An independent XMPP client (slixmpp, Debian's python3-slixmpp) for interoperability tests.
#
#   /usr/bin/python3 test/clients/slix_login.py --jid alice@localhost --password pw \
#       --host localhost --port 5222 --mode starttls|directtls --ca /path/ca.crt
#
# Connects, verifies the server certificate against --ca (hostname checked too), logs in,
# sends an XEP-0199 ping to the server and prints exactly one JSON result line on stdout:
#   {"ok": true, "jid": "...", "ping": true, "tls": "TLSv1.3", "cipher": "..."}
#   {"ok": false, "error": "auth failed: ..."}
# Exit status 0 on success, 1 on failure. slixmpp's own log goes to stderr.
import asyncio
import sys

import slixrun  # noqa: E402 (same folder)
import slixmpp


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid: str, password: str):
        super().__init__(jid, password)
        self.result: dict = {"ok": False, "error": "disconnected before the session started"}
        self.done = asyncio.get_event_loop().create_future()
        self.register_plugin("xep_0199")  # ping
        self.add_event_handler("session_start", self.on_session_start)
        # failed_auth fires for each mechanism that fails; slixmpp then tries the next one
        # (it offers SCRAM-*-PLUS with tls-unique first, which a TLS 1.3 server cannot do).
        # Only failed_all_auth is final.
        self.failures: list = []
        self.add_event_handler("failed_auth", self.on_failed_mech)
        self.add_event_handler("failed_all_auth", self.on_failed_auth)
        self.add_event_handler("ssl_invalid_chain", self.on_invalid_chain)
        self.add_event_handler("connection_failed", self.on_connection_failed)
        self.add_event_handler("stream_error", self.on_stream_error)
        self.add_event_handler("disconnected", self.on_disconnected)

    def finish(self, result: dict) -> None:
        if not self.done.done():
            self.result = result
            self.done.set_result(True)

    async def on_session_start(self, _event) -> None:
        info = {}
        try:
            ssl_obj = self.transport.get_extra_info("ssl_object") if self.transport else None
            if ssl_obj is not None:
                info = {"tls": ssl_obj.version(), "cipher": ssl_obj.cipher()[0]}
        except Exception:  # pragma: no cover - diagnostics only
            pass
        try:
            rtt = await self.plugin["xep_0199"].ping(jid=self.boundjid.domain, timeout=10)
            mech = getattr(getattr(self["feature_mechanisms"], "mech", None), "name", None)
            self.finish({"ok": True, "jid": str(self.boundjid), "ping": True, "rtt": rtt, "mechanism": mech,
                         "failedMechanisms": self.failures, **info})
        except Exception as e:  # IqError, IqTimeout
            self.finish({"ok": False, "error": f"ping failed: {type(e).__name__}: {e}", "jid": str(self.boundjid)})
        self.disconnect()

    def on_failed_mech(self, event) -> None:
        try:
            self.failures.append(f"{self['feature_mechanisms'].mech.name}: {event['condition']} {event['text']}".strip())
        except Exception:
            self.failures.append(str(event))

    def on_failed_auth(self, event) -> None:
        self.finish({"ok": False, "error": "auth failed: " + "; ".join(self.failures), "failures": self.failures})
        self.disconnect()

    def on_invalid_chain(self, e) -> None:
        self.finish({"ok": False, "error": f"certificate not trusted: {e}"})
        self.disconnect()

    def on_connection_failed(self, e) -> None:
        self.finish({"ok": False, "error": f"connection failed: {e}"})
        self.disconnect()

    def on_stream_error(self, e) -> None:
        self.finish({"ok": False, "error": f"stream error: {e['condition']}"})

    def on_disconnected(self, _e) -> None:
        self.finish(self.result if self.done.done() else {"ok": False, "error": "disconnected before the session started"})


def main() -> int:
    p = slixrun.parser()
    p.add_argument("--mode", choices=["starttls", "directtls"], default="starttls")
    p.add_argument("--timeout", type=float, default=15)
    args = p.parse_args()
    return slixrun.main(args, lambda a: Client(a.jid, a.password), use_ssl=args.mode == "directtls")


if __name__ == "__main__":
    sys.exit(main())
