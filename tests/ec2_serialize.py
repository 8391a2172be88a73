#!/usr/bin/env python3
"""ec2_serialize.py - botocore's serialization of EC2 Query requests, for
tests/test_ec2calls.c to compare corral's form bodies with.

    ec2_serialize.py CASES.json

CASES.json is a JSON array of {"action": "RunInstances", "input": {...}},
input in botocore's (boto3's) shape: {"MinCount": 1, "TagSpecifications":
[...]}. Prints a JSON array, one entry per case, in order: {"pairs":
[[name, value], ...]} with the form body's parameters decoded (Action and
Version included), or {"error": "..."} when botocore refuses the input.
Only botocore's serializer and EC2 model are used (no handlers: boto3's
UserData base64 step is a handler, so give UserData already encoded).
"""
import json
import sys
import urllib.parse

import botocore.session
from botocore import serialize
from botocore.validate import ParamValidationError, validate_parameters


def main():
    with open(sys.argv[1]) as fh:
        cases = json.load(fh)
    model = botocore.session.get_session().get_service_model("ec2")
    ser = serialize.create_serializer("ec2", include_validation=False)
    out = []
    for case in cases:
        try:
            op = model.operation_model(case["action"])
            validate_parameters(case["input"], op.input_shape)
            req = ser.serialize_to_request(case["input"], op)
            body = req["body"]
            if isinstance(body, dict):
                pairs = [[k, str(v)] for k, v in body.items()]
            else:
                if isinstance(body, bytes):
                    body = body.decode()
                pairs = [list(p) for p in urllib.parse.parse_qsl(body, keep_blank_values=True)]
            out.append({"pairs": pairs, "botocore": botocore.__version__})
        except (ParamValidationError, KeyError, ValueError) as e:
            out.append({"error": "%s: %s" % (type(e).__name__, e)})
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
