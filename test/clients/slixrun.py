# Shared plumbing for the slixmpp test clients (slix_login.py, test/im/slix_account.py): common
# arguments, certificate verification against the test CA only, connect, wait for the client's
# result, disconnect, and print it as one JSON line.
import argparse
import asyncio
import json
import logging
import ssl
import sys
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--debug", action="store_true")
    return p


async def run(c, args, use_ssl: bool) -> dict:
    """c has `done` (a future), `disconnected` (a future), `result` and `finish(result)`."""
    # Verify the server certificate against the test CA only (not the system store).
    c.ca_certs = Path(args.ca)
    c.ssl_context = ssl.create_default_context(cafile=args.ca)
    c.ssl_context.check_hostname = True
    c.ssl_context.verify_mode = ssl.CERT_REQUIRED
    # slixmpp 1.8 resolves the host again in _connect_routine and then uses default_port
    # (5222) instead of the port given to connect(); make them agree.
    c.default_port = args.port
    # force_starttls: abort if the server does not offer STARTTLS
    c.connect((args.host, args.port), use_ssl=use_ssl, force_starttls=not use_ssl)
    try:
        await asyncio.wait_for(c.done, timeout=args.timeout)
    except asyncio.TimeoutError:
        c.finish({"ok": False, "error": f"timed out after {args.timeout} s"})
    c.disconnect()
    try:
        await asyncio.wait_for(c.disconnected, timeout=3)
    except Exception:
        pass
    return c.result


def main(args, make_client, use_ssl: bool = False) -> int:
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, stream=sys.stderr)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    result = loop.run_until_complete(run(make_client(args), args, use_ssl))
    print(json.dumps(result), flush=True)
    return 0 if result.get("ok") else 1
