#!/usr/bin/env python3
"""Two `kubecs registry` processes on one S3 bucket: what is pushed to one is pulled from the
other, and an upload session hops between them chunk by chunk.

    registry-replicas.py http://A http://B TOKEN

Standard library only. Prints one line per check and 'N passed, N failed'; exits non-zero on
any failure.
"""

import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

A, B, TOKEN = sys.argv[1], sys.argv[2], sys.argv[3]
AUTH = "Basic " + base64.b64encode(f"AWS:{TOKEN}".encode()).decode()
REPO = "replicas/app"
passed = failed = 0


def req(base, method, path, body=None, headers=None):
    """(status, headers, body) without raising on HTTP errors."""
    url = path if path.startswith("http") else base + path
    r = urllib.request.Request(url, data=body, method=method)
    r.add_header("Authorization", AUTH)
    for k, v in (headers or {}).items():
        r.add_header(k, v)
    try:
        with urllib.request.urlopen(r, timeout=60) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def location(base, headers):
    loc = headers["Location"]
    return loc if loc.startswith("http") else base + loc


def digest(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


# 1. A chunked upload that hops: POST on A, PATCH on B, PATCH on A, PUT on B. The blob is
#    above one multipart part (5 MiB) so the completion streams several parts.
layer = os.urandom(6 * 1024 * 1024 + 123)
chunks = [layer[: 3 * 1024 * 1024], layer[3 * 1024 * 1024 :]]
st, h, _ = req(A, "POST", f"/v2/{REPO}/blobs/uploads/")
check("POST upload on A", st == 202, st)
loc = location(A, h)
path = loc[len(A) :]
offset = 0
for i, (base, chunk) in enumerate(zip([B, A], chunks)):
    st, h, body = req(
        base,
        "PATCH",
        path,
        chunk,
        {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
            "Content-Length": str(len(chunk)),
        },
    )
    offset += len(chunk)
    check(f"PATCH chunk {i} on {'B' if base == B else 'A'}", st == 202, (st, body[:200]))
    if st == 202:
        path = location(base, h)[len(base) :]
# Status from the other replica than the last PATCH.
st, h, _ = req(B, "GET", path)
check("upload status on B", st == 204 and h.get("Range") == f"0-{offset - 1}", (st, h.get("Range")))
# An out-of-order chunk on B is refused (the state is the bucket's, not A's memory).
st, _, _ = req(B, "PATCH", path, b"x", {"Content-Range": "0-0", "Content-Length": "1"})
check("out-of-order PATCH on B refused", st == 416, st)
sep = "&" if "?" in path else "?"
st, _, body = req(B, "PUT", f"{path}{sep}digest={digest(layer)}")
check("PUT (complete) on B", st == 201, (st, body[:200]))

# 2. Config and manifest pushed to A, pulled from B.
config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
st, _, _ = req(A, "POST", f"/v2/{REPO}/blobs/uploads/?digest={digest(config)}", config,
               {"Content-Type": "application/octet-stream"})
check("monolithic config push on A", st == 201, st)
manifest = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer), "size": len(layer)}],
}).encode()
mt = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
st, _, body = req(A, "PUT", f"/v2/{REPO}/manifests/v1", manifest, mt)
check("manifest push with tag v1 on A", st == 201, (st, body[:200]))
st, h, body = req(B, "GET", f"/v2/{REPO}/manifests/v1", headers={"Accept": mt["Content-Type"]})
check("manifest pull by tag on B", st == 200 and body == manifest, st)
st, _, body = req(B, "GET", f"/v2/{REPO}/blobs/{digest(layer)}")
check("layer pull on B", st == 200 and body == layer, (st, len(body)))
st, _, body = req(B, "GET", f"/v2/{REPO}/blobs/{digest(layer)}", headers={"Range": "bytes=5242870-5242889"})
check("ranged layer pull on B", st == 206 and body == layer[5242870:5242890], (st, len(body)))
st, _, body = req(B, "GET", f"/v2/{REPO}/tags/list")
check("tag list on B", st == 200 and json.loads(body).get("tags") == ["v1"], body[:200])

# 3. Tag moved on B, seen on A; manifest deleted on A, gone on B.
manifest2 = manifest.replace(b'"schemaVersion": 2', b'"schemaVersion": 2, "annotations": {"n": "2"}')
st, _, _ = req(B, "PUT", f"/v2/{REPO}/manifests/v1", manifest2, mt)
check("tag v1 moved on B", st == 201, st)
st, _, body = req(A, "GET", f"/v2/{REPO}/manifests/v1", headers={"Accept": mt["Content-Type"]})
check("moved tag seen on A", st == 200 and body == manifest2, st)
st, _, _ = req(A, "DELETE", f"/v2/{REPO}/manifests/{digest(manifest2)}")
check("manifest delete on A", st == 202, st)
st, _, _ = req(B, "GET", f"/v2/{REPO}/manifests/v1", headers={"Accept": mt["Content-Type"]})
check("deleted manifest's tag gone on B", st == 404, st)
st, _, body = req(B, "GET", f"/v2/{REPO}/manifests/{digest(manifest)}", headers={"Accept": mt["Content-Type"]})
check("first manifest still on B", st == 200 and body == manifest, st)

# 4. A cancelled session is unknown on the other replica.
st, h, _ = req(B, "POST", f"/v2/{REPO}/blobs/uploads/")
path = location(B, h)[len(B) :]
st, _, _ = req(B, "DELETE", path)
check("cancel on B", st == 204, st)
st, _, _ = req(A, "GET", path)
check("cancelled session unknown on A", st == 404, st)

print(f"replicas: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
