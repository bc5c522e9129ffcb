#!/usr/bin/env python3
"""A destination to watch hookgate deliver: prints each delivery and checks its signature.

    python3 scripts/demo-sink.py [port]     (default 9000)

Answers 204, or the status in the SINK_STATUS environment variable (e.g. 500 to watch retries
and dead letters). Verifies webhook-signature with the example config's destination secret.
Also prints the dead-letter alerts hookgate POSTs to /alerts.
"""
import base64
import hashlib
import hmac
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ.get("SINK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))
STATUS = int(os.environ.get("SINK_STATUS", "204"))


class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/alerts":  # hookgate's dead-letter alerts (alert_webhook_url)
            print(f"ALERT {body.decode(errors='replace')}", flush=True)
            self.send_response(204)
            self.end_headers()
            return
        msg_id, ts = self.headers.get("webhook-id", ""), self.headers.get("webhook-timestamp", "")
        signed = f"{msg_id}.{ts}.".encode() + body
        expected = "v1," + base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
        given = self.headers.get("webhook-signature", "").split()
        verdict = "valid" if expected in given else "NOT VALID" if given else "unsigned"
        print(
            f"{self.path} source={self.headers.get('hookgate-source')} "
            f"attempt={self.headers.get('hookgate-attempt')} id={msg_id} signature={verdict}\n"
            f"  {body.decode(errors='replace')[:200]}",
            flush=True,
        )
        self.send_response(STATUS)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"demo sink on http://127.0.0.1:{port}, answering {STATUS}", flush=True)
    HTTPServer(("127.0.0.1", port), Sink).serve_forever()
