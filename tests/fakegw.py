#!/usr/bin/env python3
"""fakegw.py - a scripted HTTP/1.1 server that answers like a broken etcd
gateway, for the bad-input tests a real etcd never produces: malformed JSON,
a watch stream cut in the middle of a message, a plain-text error page.

    fakegw.py PORT SCRIPT.json

SCRIPT maps a request path to a list of replies, used in turn (the last one
repeats). A reply is {"status": 200, "body": "..."} for a whole body, or
{"status": 200, "stream": ["line\\n", ...], "cut": true} for a chunked
stream that ends cleanly, or, with "cut", by closing the socket without the
final chunk (a truncated transfer). "hold": seconds to keep a stream open
after its last chunk. Every request is logged to stderr as "PATH BODY".
Listens on 127.0.0.1 only and exits on SIGTERM.
"""
import json
import signal
import socket
import sys
import threading
import time


def serve(conn, script, counters, lock):
    conn.settimeout(30)
    f = conn.makefile("rb")
    try:
        while True:
            line = f.readline()
            if not line:
                return
            method, path, _ = line.decode().split(" ", 2)
            length = 0
            while True:
                h = f.readline().decode()
                if h in ("\r\n", "\n", ""):
                    break
                k, v = h.split(":", 1)
                if k.strip().lower() == "content-length":
                    length = int(v)
            body = f.read(length).decode(errors="replace") if length else ""
            sys.stderr.write("%s %s\n" % (path, body))
            sys.stderr.flush()
            with lock:
                replies = script.get(path) or [{"status": 404, "body": "404 page not found\n"}]
                i = counters.get(path, 0)
                counters[path] = i + 1
                reply = replies[min(i, len(replies) - 1)]
            status = reply.get("status", 200)
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
                      503: "Service Unavailable"}.get(status, "Status")
            if "stream" not in reply:
                data = reply.get("body", "").encode()
                conn.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                             % (status, reason.encode(), len(data)) + data)
                continue
            conn.sendall(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                         % (status, reason.encode()))
            for chunk in reply["stream"]:
                data = chunk.encode()
                conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
            time.sleep(reply.get("hold", 0))
            if reply.get("cut"):
                conn.shutdown(socket.SHUT_RDWR)
                return
            conn.sendall(b"0\r\n\r\n")
    except (OSError, ValueError):
        return
    finally:
        conn.close()


def main():
    port = int(sys.argv[1])
    with open(sys.argv[2]) as fh:
        script = json.load(fh)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    sys.stderr.write("listening on %d\n" % port)
    sys.stderr.flush()
    counters, lock = {}, threading.Lock()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, script, counters, lock), daemon=True).start()


if __name__ == "__main__":
    main()
