#!/usr/bin/env python3
# sigv4_botocore.py — signs a batch of requests with botocore's SigV4Auth, so
# tests/test_sigv4.c can compare our signer against the reference one.
#
# Usage: sigv4_botocore.py REQUESTS.jsonl
# Each input line is a JSON object:
#   {"method", "host", "path", "query" (as sent, "" for none),
#    "headers": [[name, value], ...] (NOT X-Amz-Date or X-Amz-Security-Token:
#    botocore adds those itself from "amz_date" and "token"),
#    "body" (text, sent as UTF-8 bytes), "akid", "secret", "token" (or null),
#    "region", "service", "amz_date"}
# Each output line (same order) is {"creq", "sts", "sig"}.
# Exits 3 when botocore cannot be imported, so the caller can try another
# interpreter; any other failure is a traceback and exit 1.
import json
import sys

try:
    import botocore
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError as e:
    print(f"sigv4_botocore.py: no botocore in {sys.executable}: {e}", file=sys.stderr)
    sys.exit(3)


def sign(r):
    url = f"https://{r['host']}{r['path']}"
    if r["query"]:
        url += "?" + r["query"]
    req = AWSRequest(method=r["method"], url=url, data=r["body"].encode("utf-8"),
                     headers={k: v for k, v in r["headers"]})
    creds = Credentials(r["akid"], r["secret"], r["token"])
    auth = SigV4Auth(creds, r["service"], r["region"])
    req.context["timestamp"] = r["amz_date"]      # pin the clock
    auth._modify_request_before_signing(req)      # adds X-Amz-Date (+ token)
    creq = auth.canonical_request(req)
    sts = auth.string_to_sign(req, creq)
    return {"creq": creq, "sts": sts, "sig": auth.signature(sts, req)}


def main():
    print(f"sigv4_botocore.py: botocore {botocore.__version__} in {sys.executable}", file=sys.stderr)
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                print(json.dumps(sign(json.loads(line))))


if __name__ == "__main__":
    main()
