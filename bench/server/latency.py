#!/usr/bin/python3
"""POST -> webhook latency: sends events that each make a new customer enter audience:vip and
times their arrival at a webhook receiver in this process (CLOCK_MONOTONIC on both sides).

usage: latency.py SERVER_PORT RECEIVER_PORT COUNT RATE_PER_S
"""
import http.client
import http.server
import json
import sys
import threading
import time

server_port, receiver_port, count, rate = (int(x) for x in sys.argv[1:5])
arrivals = {}
lock = threading.Lock()


class Hook(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        now = time.monotonic()
        record = json.loads(body)
        with lock:
            arrivals.setdefault(record["customer_id"], now)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


receiver = http.server.ThreadingHTTPServer(("127.0.0.1", receiver_port), Hook)
threading.Thread(target=receiver.serve_forever, daemon=True).start()

conn = http.client.HTTPConnection("127.0.0.1", server_port)
nonce = str(int(time.time()))
sent = {}
start = time.monotonic()
for i in range(count):
    customer = "L%s-%d" % (nonce, i)
    body = json.dumps({"event_id": "lat-%s-%d" % (nonce, i), "type": "order",
                       "timestamp": int(time.time()), "customer_id": customer, "total": 200000})
    sent[customer] = time.monotonic()
    conn.request("POST", "/v1/events", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        print("POST failed:", response.status, file=sys.stderr)
    next_at = start + (i + 1) / rate
    delay = next_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
time.sleep(2)
latencies = sorted((arrivals[c] - t) * 1000 for c, t in sent.items() if c in arrivals)
missing = count - len(latencies)
if not latencies:
    print("no webhook arrived")
    sys.exit(1)
p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print("webhook_latency_ms p50=%.2f p99=%.2f max=%.2f n=%d missing=%d" %
      (p(0.50), p(0.99), latencies[-1], len(latencies), missing))
receiver.shutdown()
