#!/usr/bin/env python3
"""holdproxy.py - a TCP proxy in front of one etcd member that holds back
the first COUNT requests whose bytes match PATTERN (a regular expression)
for HOLD seconds and passes everything else through at once: one kind of
request slow (a big listing on a busy member), the rest of etcd quick.

    holdproxy.py PORT UPSTREAM_PORT PATTERN HOLD [COUNT [reply]]

COUNT defaults to 1. With "reply", PATTERN is matched against what the
server sends and the reply is held instead: the request was served at
once, its answer comes late (an overloaded server, seen from a client). Logs "listening on PORT" once ready, then "held N"
when it holds the N-th match and "released N" when it sends it on, to
stderr. Listens on 127.0.0.1 only and exits on SIGTERM.
"""
import re
import signal
import socket
import sys
import threading
import time

TAIL = 256      # bytes kept from the previous read, so a match may span two


def log(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def pump(src, dst, rule):
    tail = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            tail += data
            if rule is not None and rule.pattern.search(tail):
                tail = b""      # this match is done with
                n = rule.take()
                if n:
                    log("held %d" % n)
                    time.sleep(rule.hold)
                    log("released %d" % n)
            tail = tail[-TAIL:]
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Rule:
    def __init__(self, pattern, hold, count):
        self.pattern, self.hold, self.left, self.seen = re.compile(pattern.encode()), hold, count, 0
        self.lock = threading.Lock()

    def take(self):
        """The match's number when it is to be held, else 0."""
        with self.lock:
            if self.left <= 0:
                return 0
            self.left -= 1
            self.seen += 1
            return self.seen


def main():
    port, upstream = int(sys.argv[1]), int(sys.argv[2])
    rule = Rule(sys.argv[3], float(sys.argv[4]), int(sys.argv[5]) if len(sys.argv) > 5 else 1)
    replies = len(sys.argv) > 6 and sys.argv[6] == "reply"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(64)
    log("listening on %d" % port)
    while True:
        conn, _ = srv.accept()
        try:
            up = socket.create_connection(("127.0.0.1", upstream))
        except OSError:
            conn.close()
            continue
        threading.Thread(target=pump, args=(conn, up, None if replies else rule), daemon=True).start()
        threading.Thread(target=pump, args=(up, conn, rule if replies else None), daemon=True).start()


if __name__ == "__main__":
    main()
