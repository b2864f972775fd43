#!/usr/bin/env python3
"""Writes the hand-made seed corpora under fuzz/corpus/<target>/ (run from anywhere).

Seeds found by fuzzing (crash reproducers) are committed next to these and not touched here.
"""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
API = "/gateway/external-coding-agent"
# fuzz_request's gateway numbers its sessions: the first one opened in an input is this one.
SID = "eca_00000000000000000000000000000001"
SID2 = "eca_00000000000000000000000000000002"


def write(target, name, data):
    directory = os.path.join(ROOT, target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


# --- fuzz_request: whole requests on one connection -------------------------------------------


def request(method, target, body=None, headers=(), version="1.1"):
    lines = [f"{method} {target} HTTP/{version}", "Host: 127.0.0.1"]
    lines += list(headers)
    if body is not None:
        if isinstance(body, dict):
            body = json.dumps(body, separators=(",", ":"))
        lines += ["Content-Type: application/json", f"Content-Length: {len(body.encode())}"]
    return "\r\n".join(lines) + "\r\n\r\n" + (body or "")


def opened(workspace="demo"):
    return request("POST", f"{API}/sessions", {"workspace_id": workspace})


requests = {
    "healthz": request("GET", "/healthz"),
    "readyz": request("GET", "/readyz"),
    "status": request("GET", "/gateway/status"),
    "metrics": request("GET", "/metrics"),
    "openapi": request("GET", "/gateway/openapi.json"),
    "dashboard": request("GET", "/dashboard") + request("GET", "/dashboard/app.css"),
    "auth-session-wrong-mode": request("POST", "/gateway/auth/session", {"password": "secret"}),
    "open-session": opened(),
    "session-lifecycle": opened()
    + request("POST", f"{API}/sessions/{SID}/progress", {"message": "cloned the repo"})
    + request("POST", f"{API}/sessions/{SID}/followups", {"message": "update the changelog"})
    + request("POST", f"{API}/sessions/{SID}/followups/drain", {"limit": 10})
    + request("GET", f"{API}/sessions/{SID}")
    + request("POST", f"{API}/sessions/{SID}/close")
    + request("GET", f"{API}/sessions/{SID}/stream"),
    "stream-replay-cursor": opened()
    + "".join(
        request("POST", f"{API}/sessions/{SID}/progress", {"message": f"step {i}"})
        for i in range(10)
    )
    + request("GET", f"{API}/sessions/{SID}/stream?after_sequence_id=1&limit=3"),
    "stream-last-event-id": opened()
    + request("POST", f"{API}/sessions/{SID}/progress", {"message": "one"})
    + request("GET", f"{API}/sessions/{SID}/stream", headers=["Last-Event-ID: 0"]),
    "stream-follow": opened()
    + request("GET", f"{API}/sessions/{SID}/stream?follow=true&access_token=t"),
    "list-sessions": opened("a")
    + opened("b")
    + request("GET", f"{API}/sessions?status=running&limit=1")
    + request("GET", f"{API}/sessions?limit=1&cursor=1764240000000.{SID2}&workspace_id=a"),
    "reap": opened() + request("POST", f"{API}/reap", {"now_unix_ms": 1864240000000}),
    "drain-empty-body": opened()
    + request("POST", f"{API}/sessions/{SID}/followups/drain", headers=["Content-Length: 0"]),
    "chunked-body": (
        f"POST {API}/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        'Content-Type: application/json\r\n\r\n9\r\n{"workspa\r\ne\r\nce_id":"demo"}\r\n0\r\n\r\n'
    ),
    "http10": request("GET", "/healthz", version="1.0") ,
    "http10-keep-alive": request("GET", "/readyz", headers=["Connection: keep-alive"], version="1.0")
    + request("GET", "/healthz", version="1.0"),
    "errors": request("DELETE", "/healthz")
    + request("GET", "/nowhere")
    + request("GET", f"{API}/sessions/{SID}")
    + request("GET", f"{API}/sessions?limit=0")
    + request("GET", f"{API}/sessions?cursor=x")
    + request("POST", f"{API}/sessions", "[1,2]")
    + request("POST", f"{API}/sessions", '{"workspace_id":'),
    "body-too-large": f"POST {API}/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{{",
    "short-body": f"POST {API}/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{{}}",
    "invalid-target": "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n",
    "dot-segments": request("GET", "/./healthz") + request("GET", f"{API}/sessions/%2e%2e/stream"),
    "not-http": "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    # RFC 9112's header rules: each is refused and ends the connection, so the request hidden in
    # its body (or after it) is never answered.
    "te-identity-smuggle": f"POST {API}/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "Transfer-Encoding: identity\r\n\r\n" + opened("smuggled"),
    "te-chunked-not-last": f"POST {API}/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "Transfer-Encoding: chunked, identity\r\n\r\n" + opened("smuggled"),
    "te-gzip-chunked": f"POST {API}/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    'Transfer-Encoding: gzip, chunked\r\n\r\n17\r\n{"workspace_id":"demo"}\r\n0\r\n\r\n',
    "missing-host": "GET /healthz HTTP/1.1\r\n\r\n" + request("GET", "/readyz"),
    "two-hosts": "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + request("GET", "/readyz"),
    "bare-lf-chunk": f"POST {API}/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    'Transfer-Encoding: chunked\r\n\r\n17\n{"workspace_id":"demo"}\n0\n\n',
    "leading-empty-lines": "\r\n\r\n" + opened() + "\r\n" + request("GET", "/healthz"),
    "head": opened()
    + request("HEAD", "/healthz")
    + request("HEAD", "/dashboard")
    + request("HEAD", f"{API}/sessions/{SID}")
    + request("HEAD", f"{API}/sessions/{SID}/stream")
    + request("HEAD", f"{API}/sessions/{SID}/close")
    + request("GET", "/healthz"),
    # Browser protections: the fuzzed gateway allows the Hosts 127.0.0.1 and x and lists the
    # origin http://app.example.
    "cross-site-simple-post": f"POST {API}/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    'Origin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: 23\r\n\r\n'
    '{"workspace_id":"demo"}' + request("GET", f"{API}/sessions"),
    "form-post": f"POST {API}/reap HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 5\r\n\r\na=b&c"
    + request("GET", "/healthz"),
    "rebinding-host": "GET /gateway/status HTTP/1.1\r\nHost: evil.example:8787\r\n\r\n"
    + request("GET", "/healthz"),
    "cors-preflight": request(
        "OPTIONS",
        f"{API}/sessions",
        headers=["Origin: http://app.example", "Access-Control-Request-Method: POST"],
    )
    + request("POST", f"{API}/sessions", {"workspace_id": "cors"}, headers=["Origin: http://app.example"]),
    "same-origin": request("POST", f"{API}/sessions", {"workspace_id": "own"}, headers=["Origin: http://127.0.0.1"]),
    "max-cursor": opened()
    + request("POST", f"{API}/sessions/{SID}/progress", {"message": "one"})
    + request("GET", f"{API}/sessions/{SID}/stream?after_sequence_id=18446744073709551615"),
}
for name, data in requests.items():
    write("fuzz_request", name, data)

# --- fuzz_json_body: a mode byte (bit 0: body optional; bits 1+: optional_integer's bounds) ----

bodies = {
    "open": (0, '{"workspace_id":"demo"}'),
    "progress": (0, '{"message":"cloned the repo, running the tests\\n\\u00e9"}'),
    "drain": (3, '{"limit":10}'),
    "reap": (1 | 2, '{"now_unix_ms":1764240000000}'),
    "auth": (0, '{"password":"secret"}'),
    "empty-optional": (1, " \t\r\n"),
    "not-an-object": (0, "[1,2,3]"),
    "numbers": (4, '{"limit":1.0,"a":-0,"b":18446744073709551616,"c":-9223372036854775808,"d":1e3}'),
    "wrong-types": (0, '{"workspace_id":null,"message":["x"],"limit":"10"}'),
    "duplicate-keys": (2, '{"limit":1,"limit":2000000}'),
    "escapes": (0, '{"message":"\\ud83d\\ude00 \\u0000 \\"q\\""}'),
    "lone-surrogate": (0, '{"message":"\\ud800"}'),
    "invalid-utf8": (0, b'{"message":"\xff\xfe"}'),
    "truncated": (0, '{"workspace_id":"de'),
    "deep": (0, "{" + '"a":[' * 40 + "]" * 40 + "}"),
}
for name, (mode, body) in bodies.items():
    write("fuzz_json_body", name, bytes([mode]) + (body if isinstance(body, bytes) else body.encode()))

# --- fuzz_query: targets, numbers and cursors --------------------------------------------------

queries = {
    "list": f"{API}/sessions?status=running&workspace_id=demo&limit=10"
    f"&cursor=1764240000000.eca_5f0c8e2a9b1d4e7f8a3c6b2d1e0f9a84",
    "stream": f"{API}/sessions/eca_5f0c/stream?after_sequence_id=1&follow=true&limit=5&access_token=a%2Bb",
    "encoded": "/a%2Fb/%2e%2e/c%20d?x=a%26b&y&=z&x=2",
    "max-u64": "18446744073709551615",
    "over-u64": "18446744073709551616",
    "leading-zeros": "000000000000000000000000007",
    "cursor": "1764240000000.eca_5f0c8e2a9b1d4e7f8a3c6b2d1e0f9a84",
    "cursor-dots": "9223372036854775807.a.b.c",
    "cursor-over-int64": "9223372036854775808.eca_x",
}
for name, data in queries.items():
    write("fuzz_query", name, data)

# --- fuzz_sse: FuzzedDataProvider layout ------------------------------------------------------
# Strings come from the front (ConsumeRandomLengthString: "\\" escapes a backslash, "\\" and any
# other byte end the string); bools and integers from the back, last byte first.


def sse_seed(comment, frames):
    front = bytearray()
    back = bytearray()  # in the order it is consumed

    def string(s):
        front.extend(s.replace(b"\\", b"\\\\") + b"\\x")

    string(comment)
    for i, frame in enumerate(frames):
        last = i == len(frames) - 1
        for field in ("id", "event"):
            back.append(1 if field in frame else 0)
            if field in frame:
                string(frame[field])
        back.append(1 if "retry" in frame else 0)
        if "retry" in frame:
            retry = frame["retry"]
            if retry >= 0:
                back.append(1)
                back.extend(struct.pack(">I", retry))
            else:
                back.append(0)  # ConsumeIntegral<int64_t>: INT64_MIN + the raw 8 bytes
                back.extend(struct.pack(">Q", (retry + 2**63) % 2**64))
        if last:
            front.extend(frame["data"])
        else:
            string(frame["data"])
    return bytes(front) + bytes(reversed(back))


event = json.dumps({"sequence_id": 1, "event_type": "progress", "message": "hi",
                    "timestamp_unix_ms": 1764240000000}, separators=(",", ":")).encode()
snapshot = b'{"session":{"session_id":"eca_1","status":"running"},"replay_after_sequence_id":null}'
sse = {
    "gateway-stream": sse_seed(b"keepalive", [
        {"event": b"external_coding_agent.snapshot", "retry": 3000, "data": snapshot},
        {"id": b"1", "event": b"external_coding_agent.progress", "data": event}]),
    "done": sse_seed(b"", [{"data": b"x"}, {"event": b"done", "data": b"[DONE]"}]),
    "line-breaks": sse_seed(b"a\r\nb", [
        {"id": b"1\n2", "event": b"a\rb", "data": b"one\r\ntwo\rthree\nfour\r"},
        {"data": b"\n\n"}]),
    "nul-and-spaces": sse_seed(b"\x00", [
        {"id": b"\x00 7", "event": b" x", "data": b" leading\x00nul"},
        {"id": b"", "event": b"", "data": b""}]),
    "negative-retry": sse_seed(b"", [{"retry": -1, "data": b"a"}, {"retry": 0, "data": b"b"}]),
    "backslashes": sse_seed(b"\\", [{"id": b"\\\\", "data": b"\\"}, {"data": b"data: x"}]),
}
for name, data in sse.items():
    write("fuzz_sse", name, data)

# --- fuzz_feed_message: payloads on the Redis feed channel -------------------------------------
# As src/redis/gateway.lua's `publish` writes them with cjson: numbers may come as doubles and an
# empty event is `{}`.

feed = {
    "progress": b'["eca_1","ws-1","running",1764240000000,1764240000500,0,'
                b'[1,"progress","hi",1764240000500]]',
    "followup-escapes": b'["eca_1","ws \\"quoted\\"","running",1764240000000,1764240000500,1,'
                        b'[2,"followup","line\\nbreak \\u00e9 \\\\",1764240000500]]',
    "state-only": b'["eca_1","ws-1","closed",1764240000000,1764240000500,0,{}]',
    "doubles": b'["eca_1","ws-1","timed_out",1.76424e+12,1.7642400005e+12,2.0,[3.0,"t","m",1e3]]',
    "escaped-id": b'["eca_\\"x\\\\y","w","failed",1,2,0,[]]',
    "not-a-message": b'["eca_1","ws-1","sleeping",1,2,0,[1,"t"]]',
    # A typed event: its data (a JSON object) is a fifth element, a string, only when it has one.
    "typed-with-data": b'["eca_1","ws-1","running",1764240000000,1764240000500,0,'
                       b'[4,"agent.tool_call","edited a.cpp",1764240000500,'
                       b'"{\\"path\\":\\"src\\/a.cpp\\",\\"lines\\":[1,2]}"]]',
}
for name, data in feed.items():
    write("fuzz_feed_message", name, data)
