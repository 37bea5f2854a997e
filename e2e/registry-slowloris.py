"""A bounded slow-loris check of `kubecs registry`: IDLE connections that send nothing (or
half a request line) must not keep a legitimate client out, and the registry must close them
once its header-read timeout passes.

usage: registry-slowloris.py ADDR TOKEN IDLE HEADER_TIMEOUT_SECONDS
Prints counts; exits 1 when a legitimate request is not served while the idle connections
are open, or when the registry keeps them past a few rounds of its header timeout.
"""

import base64
import socket
import sys
import time
import urllib.request

addr, token, idle, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
host, port = addr.rsplit(":", 1)
auth = "Basic " + base64.b64encode(f"AWS:{token}".encode()).decode()

socks = []
for i in range(idle):
    s = socket.create_connection((host, int(port)), timeout=5)
    if i % 2:
        s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")  # a request that never ends its headers
    socks.append(s)
print(f"opened {len(socks)} idle connections (half with a started request)")

# A legitimate client is served while they are open: the connection cap leaves it room in the
# backlog, and slots free up as the idle ones are cut.
start = time.time()
req = urllib.request.Request(f"http://{addr}/v2/", headers={"Authorization": auth})
with urllib.request.urlopen(req, timeout=4 * timeout + 10) as r:
    assert r.status == 200, r.status
print(f"a legitimate request was served {time.time() - start:.1f}s after the idle connections opened")

# The registry closes every idle connection: those over its connection cap wait in the listen
# backlog and get their own header timeout once accepted, so allow a few rounds of it.
window = 6 * timeout + 5
deadline = start + window
closed = 0
for s in socks:
    s.settimeout(max(0.1, deadline - time.time()))
    try:
        data = s.recv(4096)
        # EOF, or a 408 then EOF: either way the server ended it.
        closed += 1 if data == b"" or data.startswith(b"HTTP/1.1 408") or s.recv(1) == b"" else 0
    except (socket.timeout, TimeoutError):
        pass
    except OSError:
        closed += 1
    s.close()
print(f"the registry closed {closed} of {len(socks)} idle connections within {window:.0f}s")
if closed != len(socks):
    sys.exit(1)
