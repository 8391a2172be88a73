#!/usr/bin/env python3
"""ec2proxy.py - what moto lacks, in front of moto_server: fault injection, a
log of the EC2 calls served, and an IMDSv2 endpoint, for corral's tests.

    ec2proxy.py --moto http://127.0.0.1:MPORT --ready-file PATH [--region R]

moto_server must run with INITIAL_NO_AUTH_ACTION_COUNT=5: at start this
proxy makes exactly 5 unchecked IAM calls (CreateUser, PutUserPolicy with
ec2:* + sts:AssumeRole, CreateAccessKey, CreateRole, PutRolePolicy with
ec2:*), so from then on moto checks every SigV4 signature (401 AuthFailure).
It then assumes the role (signed with the user's key) for the IMDS
credentials, binds 127.0.0.1 on a port the kernel picks, and writes
READY-FILE (JSON: port, moto, region, access_key_id, secret_access_key, role,
pid) by rename, so the file appears complete once the proxy is listening.

One port serves everything:
  anything else          forwarded to moto unchanged (headers incl. Host and
                         Authorization, body bytes), so signatures still verify
  PUT /latest/api/token  IMDSv2 token (X-aws-ec2-metadata-token-ttl-seconds 1-21600)
  GET /latest/meta-data/iam/security-credentials/[ROLE], .../placement/region,
                         .../placement/availability-zone (token required, else 401)
  POST /_proxy/faults    JSON list of {"action": "RunInstances"|"*", "count": N
                         (default 1, < 0: unlimited), "kind": throttle | capacity |
                         spot-capacity | internal | http500 | drop | slow | error,
                         "delay_ms" (slow), "status"/"code"/"message" (error)};
                         replaces the list. GET: the list with counts left.
  GET /_proxy/log        JSON array of the EC2 calls served, oldest first
  POST /_proxy/reset     clears faults, log and IMDS counters (not the reservations)
  POST /_proxy/reserved  JSON list of {"id", "type", "az" (null: regional), "count",
                         "state" (default active), "scope" (default from az)}:
                         DescribeReservedInstances (moto has none) is answered
                         from it, in AWS's XML form; null (or never set): it
                         goes to moto as before (a 500). GET: the list or null
  GET /_proxy/imds       {"requests": {...}, "credentials": {...}, "role": R}
  POST /_proxy/imds      {"expires_in": S} sets Expiration to now + S;
                         {"rotate": true} assumes the role again (new key,
                         secret, token); {"available": false} makes every
                         /latest path answer 404 (no IMDS); {"instance_tags":
                         false} makes .../tags/instance[/KEY] answer 404 (as
                         without InstanceMetadataTags)
  POST /_proxy/node      {"id": INSTANCE}: the IMDS of that instance, on a port
                         of its own (one per instance, made once): {"id",
                         "url"}. Besides what the main port serves it answers
                         .../meta-data/instance-id, instance-type, local-ipv4,
                         placement/availability-zone (the instance's own, from
                         moto) and tags/instance[/KEY] (its tags), so a node
                         started from user data can learn who it is
  POST /_proxy/setup     creates (once) a launch template "corral-test" on one of
                         moto's AMIs; {"launch_template", "subnet", "az", "ami",
                         "ami2" (another AMI, a machine image rollout's target)}
  CreateLaunchTemplateVersion with a ClientToken: answered as EC2 does (moto
                         makes a new version every time): the first answer for
                         that template and token, again
  GET /_proxy/instances  every instance moto knows: [{"id", "state", "type",
                         "launch_time", "token", "tags": {}}] (the test's view of
                         the cloud; not in the call log)
  POST /_proxy/run       {"tags": {K: V}, "type"}: one instance started outside
                         corral (an orphan, say); {"id"}. Not in the call log
  GET /_proxy/inflight   EC2 calls being served now, by action: {"RunInstances": 1}
Exits on SIGTERM.
"""
import argparse
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

USER, ROLE, ACCOUNT = "corral-test", "corral-node", "123456789012"
HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
KINDS = {"throttle", "capacity", "spot-capacity", "internal", "http500", "drop", "slow", "error"}


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sigv4_headers(host, service, region, body, key_id, secret, token=None):
    """Headers for a SigV4-signed form POST to / (the proxy's own calls)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    h = {"content-type": "application/x-www-form-urlencoded; charset=utf-8", "host": host, "x-amz-date": amz_date}
    if token:
        h["x-amz-security-token"] = token
    names = sorted(h)
    canonical = "\n".join(["POST", "/", ""] + ["%s:%s" % (n, h[n]) for n in names] +
                          ["", ";".join(names), hashlib.sha256(body).hexdigest()])
    scope = "%s/%s/%s/aws4_request" % (day, region, service)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    h["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        key_id, scope, ";".join(names), sig)
    return h


def text_of(xml, name):
    for e in ET.fromstring(xml).iter():
        if e.tag.rsplit("}", 1)[-1] == name:
            return e.text
    raise KeyError(name)


def local(tag):
    return tag.rsplit("}", 1)[-1]


def child(e, name):
    return next((x for x in e if local(x.tag) == name), None)


def child_text(e, name):
    x = child(e, name)
    return x.text if x is not None else None


def instance_json(item):
    tags = {}
    ts = child(item, "tagSet")
    for t in (ts if ts is not None else []):
        tags[child_text(t, "key")] = child_text(t, "value") or ""
    st = child(item, "instanceState")
    pl = child(item, "placement")
    return {"id": child_text(item, "instanceId"), "state": child_text(st, "name") if st is not None else None,
            "type": child_text(item, "instanceType"), "launch_time": child_text(item, "launchTime"),
            "token": child_text(item, "clientToken"), "tags": tags,
            "az": child_text(pl, "availabilityZone") if pl is not None else None,
            "private_ip": child_text(item, "privateIpAddress")}


class Moto:
    def __init__(self, url, region):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.region = u.hostname, u.port, region

    def call(self, service, params, key=("AKIDBOOTSTRAP", "bootstrap"), token=None):
        body = urllib.parse.urlencode(params).encode()
        headers = sigv4_headers("%s:%d" % (self.host, self.port), service, self.region, body, key[0], key[1], token)
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            c.request("POST", "/", body=body, headers=headers)
            r = c.getresponse()
            text = r.read().decode()
        finally:
            c.close()
        if r.status != 200:
            raise RuntimeError("moto %s %s: HTTP %d %s" % (service, params["Action"], r.status, text[:300]))
        return text

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() >= deadline:
                    raise RuntimeError("moto_server at %s:%d did not accept connections within %g s"
                                       % (self.host, self.port, timeout))
                time.sleep(0.02)

    def bootstrap(self):
        """The 5 unchecked calls; returns the user's (key id, secret)."""
        iam = {"Version": "2010-05-08"}
        user_policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["ec2:*", "sts:AssumeRole"], "Resource": "*"}]}
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
        role_policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]}
        self.call("iam", dict(iam, Action="CreateUser", UserName=USER))
        self.call("iam", dict(iam, Action="PutUserPolicy", UserName=USER, PolicyName="ec2",
                              PolicyDocument=json.dumps(user_policy)))
        xml = self.call("iam", dict(iam, Action="CreateAccessKey", UserName=USER))
        key = (text_of(xml, "AccessKeyId"), text_of(xml, "SecretAccessKey"))
        self.call("iam", dict(iam, Action="CreateRole", RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust)))
        self.call("iam", dict(iam, Action="PutRolePolicy", RoleName=ROLE, PolicyName="ec2",
                              PolicyDocument=json.dumps(role_policy)))
        return key

    def ec2(self, params, key):
        return self.call("ec2", dict(params, Version="2016-11-15"), key=key)

    def describe(self, key, instance_id=None):
        """Every instance (or the one given), all pages."""
        out, token = [], None
        while True:
            params = {"Action": "DescribeInstances"}
            if instance_id:
                params["InstanceId.1"] = instance_id
            else:
                params["MaxResults"] = "100"
            if token:
                params["NextToken"] = token
            root = ET.fromstring(self.ec2(params, key))
            for e in root.iter():
                if local(e.tag) != "instancesSet":
                    continue
                for item in e:
                    out.append(instance_json(item))
            token = next((x.text for x in root if local(x.tag) == "nextToken" and x.text), None)
            if not token:
                return out

    def assume_role(self, user_key):
        xml = self.call("sts", {"Action": "AssumeRole", "Version": "2011-06-15", "RoleSessionName": "imds",
                                "RoleArn": "arn:aws:iam::%s:role/%s" % (ACCOUNT, ROLE)}, key=user_key)
        return {"AccessKeyId": text_of(xml, "AccessKeyId"), "SecretAccessKey": text_of(xml, "SecretAccessKey"),
                "Token": text_of(xml, "SessionToken")}


class State:
    def __init__(self, moto, user_key):
        self.lock = threading.Lock()
        self.moto, self.user_key = moto, user_key
        self.faults, self.log, self.tokens = [], [], {}
        self.imds_available = True
        self.instance_tags = True
        self.nodes = {}             # instance id -> its IMDS server
        self.spot_action = None
        self.counts = {}
        self.inflight = {}
        self.setup = None
        self.template_versions = {}  # (template, ClientToken) -> the first reply
        self.rotate(None)

    def rotate(self, expires_in):
        creds = self.moto.assume_role(self.user_key)
        now = time.time()
        creds.update(LastUpdated=iso(now), Expiration=iso(now + (expires_in if expires_in is not None else 6 * 3600)))
        self.creds = creds

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def take_fault(self, action):
        with self.lock:
            for f in self.faults:
                if f["count"] != 0 and f["action"] in ("*", action):
                    if f["count"] > 0:
                        f["count"] -= 1
                    return dict(f)
        return None


def error_xml(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>%s</Code><Message>%s</Message>'
            '</Error></Errors><RequestID>%s</RequestID></Response>' % (code, message, uuid.uuid4())).encode()


def fault_reply(f, params):
    kind = f["kind"]
    if kind == "throttle":
        return 503, "text/xml;charset=UTF-8", error_xml("RequestLimitExceeded", "Request limit exceeded.")
    if kind == "capacity":
        t = params.get("InstanceType", "m5.large")
        return 500, "text/xml;charset=UTF-8", error_xml("InsufficientInstanceCapacity", (
            "We currently do not have sufficient %s capacity in the Availability Zone you requested (us-east-1a). "
            "Our system will be working on provisioning additional capacity. You can currently get %s capacity by "
            "not specifying an Availability Zone in your request or choosing us-east-1b, us-east-1c, us-east-1d, "
            "us-east-1f.") % (t, t))
    if kind == "spot-capacity":
        return 500, "text/xml;charset=UTF-8", error_xml(
            "InsufficientInstanceCapacity", "There is no Spot capacity available that matches your request.")
    if kind == "internal":
        return 500, "text/xml;charset=UTF-8", error_xml(
            "InternalError", "An internal error has occurred. Retry your request, but if the problem persists, "
            "contact us with details by posting a message on the AWS forums.")
    if kind == "http500":
        return 500, "text/html", (b"<html><head><title>500 Internal Server Error</title></head><body>"
                                  b"<h1>500 Internal Server Error</h1></body></html>\n")
    return f.get("status", 400), "text/xml;charset=UTF-8", error_xml(f.get("code", "InvalidParameterValue"),
                                                                     f.get("message", "Injected error."))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ec2proxy"
    state = None            # set in main()
    instance = None         # a node's own IMDS (POST /_proxy/node): its instance id

    def log_message(self, fmt, *args):
        sys.stderr.write("ec2proxy: %s\n" % (fmt % args))

    def reply(self, status, body, ctype="application/json", headers=()):
        if isinstance(body, (dict, list)):
            body = (json.dumps(body) + "\n").encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                n = int(self.rfile.readline().split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def do_PUT(self):
        self.route()

    def do_DELETE(self):
        self.route()

    def route(self):
        body = self.read_body()
        path = urllib.parse.urlsplit(self.path).path
        try:
            if self.instance and not path.startswith("/latest/"):
                self.reply(404, "Not Found", "text/plain")
            elif path.startswith("/_proxy/"):
                self.control(path, body)
            elif path.startswith("/latest/"):
                self.imds(path)
            else:
                self.ec2(body)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            self.reply(400, {"error": str(e)})
        except (RuntimeError, OSError, ET.ParseError, StopIteration) as e:
            self.reply(502, {"error": "moto: %s" % e})

    # ---- control ----
    def control(self, path, body):
        st = self.state
        data = json.loads(body) if body.strip() else None
        if path == "/_proxy/faults" and self.command == "POST":
            faults = data if isinstance(data, list) else [data]
            parsed = []
            for f in faults:
                if f.get("kind") not in KINDS:
                    raise ValueError("fault kind %r: one of %s" % (f.get("kind"), ", ".join(sorted(KINDS))))
                parsed.append(dict(f, action=f.get("action", "*"), count=int(f.get("count", 1)),
                                   delay_ms=int(f.get("delay_ms", 0))))
            with st.lock:
                st.faults = parsed
            self.reply(200, parsed)
        elif path == "/_proxy/faults":
            with st.lock:
                self.reply(200, st.faults)
        elif path == "/_proxy/reserved" and self.command == "POST" and data is None:
            with st.lock:
                st.reserved = None
            self.reply(200, None)
        elif path == "/_proxy/reserved" and self.command == "POST":
            res = data if isinstance(data, list) else []
            parsed = []
            for r in res:
                az = r.get("az")
                parsed.append({"id": str(r.get("id") or uuid.uuid4()), "type": str(r["type"]), "az": az,
                               "count": int(r.get("count", 1)), "state": str(r.get("state", "active")),
                               "scope": str(r.get("scope") or ("Availability Zone" if az else "Region"))})
            with st.lock:
                st.reserved = parsed
            self.reply(200, parsed)
        elif path == "/_proxy/reserved":
            with st.lock:
                self.reply(200, getattr(st, "reserved", None))
        elif path == "/_proxy/log":
            with st.lock:
                self.reply(200, st.log)
        elif path == "/_proxy/reset" and self.command == "POST":
            with st.lock:
                st.faults, st.log, st.counts = [], [], {}
            self.reply(200, {})
        elif path == "/_proxy/imds" and self.command == "POST":
            data = data or {}
            with st.lock:
                if data.get("rotate"):
                    st.rotate(data.get("expires_in"))
                elif "expires_in" in data:
                    st.creds["Expiration"] = iso(time.time() + float(data["expires_in"]))
                if "available" in data:
                    st.imds_available = bool(data["available"])
                if "instance_tags" in data:
                    st.instance_tags = bool(data["instance_tags"])
                if "spot_action" in data:
                    st.spot_action = data["spot_action"]
                self.reply(200, st.creds)
        elif path == "/_proxy/imds":
            with st.lock:
                self.reply(200, {"requests": st.counts, "credentials": st.creds, "role": ROLE,
                                 "available": st.imds_available})
        elif path == "/_proxy/node" and self.command == "POST":
            self.reply(200, node_imds(st, str(data["id"])))
        elif path == "/_proxy/setup" and self.command == "POST":
            self.reply(200, self.cloud_setup())
        elif path == "/_proxy/instances":
            self.reply(200, st.moto.describe(st.user_key))
        elif path == "/_proxy/run" and self.command == "POST":
            self.reply(200, self.cloud_run(data or {}))
        elif path == "/_proxy/inflight":
            with st.lock:
                self.reply(200, {k: v for k, v in st.inflight.items() if v})
        else:
            self.reply(404, {"error": "no such control path: %s %s" % (self.command, path)})

    # ---- the test's own view of the cloud (signed with the user's key) ----
    def cloud_setup(self):
        st = self.state
        with st.lock:
            if st.setup:
                return st.setup
        root = ET.fromstring(st.moto.ec2({"Action": "DescribeImages", "Owner.1": "amazon"}, st.user_key))
        amis = [x.text for x in root.iter() if local(x.tag) == "imageId"]
        ami = amis[0]
        xml = st.moto.ec2({"Action": "CreateLaunchTemplate", "LaunchTemplateName": "corral-test",
                           "LaunchTemplateData.ImageId": ami, "LaunchTemplateData.InstanceType": "t3.micro"},
                          st.user_key)
        lt = text_of(xml, "launchTemplateId")
        xml = st.moto.ec2({"Action": "DescribeSubnets"}, st.user_key)
        setup = {"launch_template": lt, "subnet": text_of(xml, "subnetId"), "az": text_of(xml, "availabilityZone"),
                 "ami": ami, "ami2": next(a for a in amis if a != ami)}
        with st.lock:
            st.setup = setup
        return setup

    def cloud_run(self, data):
        st = self.state
        setup = self.cloud_setup()
        params = {"Action": "RunInstances", "ImageId": setup["ami"], "MinCount": "1", "MaxCount": "1",
                  "InstanceType": str(data.get("type", "t3.micro")), "SubnetId": setup["subnet"]}
        for i, (k, v) in enumerate(sorted((data.get("tags") or {}).items()), 1):
            params["TagSpecification.1.ResourceType"] = "instance"
            params["TagSpecification.1.Tag.%d.Key" % i] = str(k)
            params["TagSpecification.1.Tag.%d.Value" % i] = str(v)
        return {"id": text_of(st.moto.ec2(params, st.user_key), "instanceId")}

    # ---- IMDSv2 ----
    def imds(self, path):
        st = self.state
        if not st.imds_available:
            st.count("unavailable")
            return self.reply(404, "Not Found", "text/plain")
        if path == "/latest/api/token":
            st.count("token")
            if self.command != "PUT":
                return self.reply(405, "Method Not Allowed", "text/plain")
            try:
                ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
            except ValueError:
                ttl = 0
            if not 1 <= ttl <= 21600:
                return self.reply(400, "Bad Request", "text/plain")
            token = secrets.token_urlsafe(32)
            with st.lock:
                st.tokens[token] = time.monotonic() + ttl
            return self.reply(200, token, "text/plain", [("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))])
        with st.lock:
            exp = st.tokens.get(self.headers.get("X-aws-ec2-metadata-token", ""))
        if self.command != "GET":
            return self.reply(405, "Method Not Allowed", "text/plain")
        if exp is None or exp < time.monotonic():
            st.count("unauthorized")
            return self.reply(401, "Unauthorized", "text/plain")
        creds = "/latest/meta-data/iam/security-credentials/"
        if path == creds:
            st.count("role")
            return self.reply(200, ROLE, "text/plain")
        if path == creds + ROLE:
            st.count("credentials")
            with st.lock:
                doc = dict(st.creds, Code="Success", Type="AWS-HMAC")
            return self.reply(200, json.dumps(doc, indent=2), "text/plain")
        if self.instance and path.startswith("/latest/meta-data/"):
            value = self.identity(path[len("/latest/meta-data/"):])
            if value is not None:
                st.count("identity")
                if value is False:
                    return self.reply(404, "Not Found", "text/plain")
                return self.reply(200, value, "text/plain")
        st.count("other")
        if path == "/latest/meta-data/placement/region":
            return self.reply(200, st.moto.region, "text/plain")
        if path == "/latest/meta-data/placement/availability-zone":
            return self.reply(200, st.moto.region + "a", "text/plain")
        if path == "/latest/meta-data/spot/instance-action":
            with st.lock:
                action = st.spot_action
            if action is None:
                return self.reply(404, "Not Found", "text/plain")
            return self.reply(200, json.dumps(action), "text/plain")
        return self.reply(404, "Not Found", "text/plain")

    def identity(self, what):
        """A node's own metadata: the text, False for 404, None: not ours."""
        st = self.state
        if what.startswith("tags/instance") and not st.instance_tags:
            return False
        if what not in ("instance-id", "instance-type", "local-ipv4", "placement/availability-zone") and \
                not what.startswith("tags/instance"):
            return None
        found = st.moto.describe(st.user_key, self.instance)
        if not found:
            return False
        x = found[0]
        if what.startswith("tags/instance/"):
            return x["tags"].get(what[len("tags/instance/"):], False)
        if what.rstrip("/") == "tags/instance":
            return "\n".join(sorted(x["tags"])) or False
        return {"instance-id": x["id"], "instance-type": x["type"], "local-ipv4": x["private_ip"],
                "placement/availability-zone": x["az"]}[what] or False

    # ---- EC2: faults, then moto ----
    def ec2(self, body):
        st = self.state
        query = urllib.parse.urlsplit(self.path).query
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        if "form-urlencoded" in self.headers.get("Content-Type", ""):
            params.update(urllib.parse.parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
        auth = self.headers.get("Authorization", "")
        key_id = auth.partition("Credential=")[2].partition("/")[0] or None
        entry = {"time": time.time(), "method": self.command, "action": params.get("Action"), "params": params,
                 "access_key_id": key_id, "security_token": self.headers.get("X-Amz-Security-Token"),
                 "fault": None, "status": None}
        t0 = time.monotonic()
        with st.lock:
            st.inflight[entry["action"]] = st.inflight.get(entry["action"], 0) + 1
        try:
            self.ec2_serve(st, entry, body, t0)
        finally:
            with st.lock:
                st.inflight[entry["action"]] -= 1

    def ec2_serve(self, st, entry, body, t0):
        params = entry["params"]
        f = st.take_fault(entry["action"])
        if f:
            entry["fault"] = f["kind"]
        if f and f["kind"] == "slow":
            time.sleep(f["delay_ms"] / 1000.0)
        if f and f["kind"] == "drop":
            self.close_connection = True
            reply = None
            entry["status"] = 0
        elif f and f["kind"] != "slow":
            status, ctype, data = fault_reply(f, params)
            reply = (status, data, ctype, ())
            entry["status"] = status
        elif entry["action"] == "DescribeReservedInstances" and getattr(st, "reserved", None) is not None:
            reply = (200, self.reserved_xml(params), "text/xml;charset=UTF-8", ())
            entry["status"] = 200
        elif entry["action"] == "CreateLaunchTemplateVersion" and params.get("ClientToken"):
            reply = self.template_version(st, params, body)
            entry["status"] = reply[0]
        else:
            reply = self.forward(body)
            entry["status"] = reply[0]
        entry["duration_ms"] = round((time.monotonic() - t0) * 1000, 1)
        # Logged before the reply goes out: a client that has its answer
        # finds the call in the log.
        with st.lock:
            st.log.append(entry)
        if reply:
            self.reply(*reply)

    def template_version(self, st, params, body):
        """CreateLaunchTemplateVersion with EC2's ClientToken idempotency,
        which moto lacks: the same token (and template) gets the first
        answer again instead of a new version."""
        key = (params.get("LaunchTemplateId") or params.get("LaunchTemplateName"), params["ClientToken"])
        with st.lock:
            cache = st.template_versions
            if key in cache:
                return cache[key]
        reply = self.forward(body)
        if reply[0] == 200:
            with st.lock:
                reply = cache.setdefault(key, reply)
        return reply

    def reserved_xml(self, params):
        """The test's reservations as AWS writes them; filters on state and
        instance-type are applied (the ones corral sends)."""
        with self.state.lock:
            res = list(getattr(self.state, "reserved", []))
        filters = {}
        i = 1
        while "Filter.%d.Name" % i in params:
            vals, j = [], 1
            while "Filter.%d.Value.%d" % (i, j) in params:
                vals.append(params["Filter.%d.Value.%d" % (i, j)])
                j += 1
            filters[params["Filter.%d.Name" % i]] = vals
            i += 1
        now = time.time()
        items = []
        for r in res:
            if "state" in filters and r["state"] not in filters["state"]:
                continue
            if "instance-type" in filters and r["type"] not in filters["instance-type"]:
                continue
            az = "<availabilityZone>%s</availabilityZone>" % r["az"] if r["az"] else ""
            items.append(
                "<item><reservedInstancesId>%s</reservedInstancesId><instanceType>%s</instanceType>%s"
                "<start>%s</start><end>%s</end><duration>31536000</duration><fixedPrice>0.0</fixedPrice>"
                "<usagePrice>0.0</usagePrice><instanceCount>%d</instanceCount>"
                "<productDescription>Linux/UNIX</productDescription><state>%s</state>"
                "<instanceTenancy>default</instanceTenancy><currencyCode>USD</currencyCode>"
                "<offeringType>No Upfront</offeringType><recurringCharges/><scope>%s</scope></item>"
                % (r["id"], r["type"], az, iso(now - 86400), iso(now + 365 * 86400), r["count"], r["state"],
                   r["scope"]))
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<DescribeReservedInstancesResponse '
                'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>%s</requestId>'
                '<reservedInstancesSet>%s</reservedInstancesSet></DescribeReservedInstancesResponse>'
                % (uuid.uuid4(), "".join(items))).encode()

    def forward(self, body):
        m = self.state.moto
        c = http.client.HTTPConnection(m.host, m.port, timeout=60)
        try:
            # Signed headers go through whatever they are (curl signs Expect
            # when told to send it); of the rest, hop-by-hop ones stay here.
            auth = self.headers.get("Authorization", "")
            signed = set(auth.partition("SignedHeaders=")[2].partition(",")[0].lower().split(";"))
            c.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if (k.lower() not in HOP or k.lower() in signed) and k.lower() != "content-length":
                    c.putheader(k, v)
            c.putheader("Content-Length", str(len(body)))
            c.endheaders(body)
            r = c.getresponse()
            data = r.read()
            headers = [(k, v) for k, v in r.getheaders()
                       if k.lower() not in HOP and k.lower() not in ("content-length", "content-type", "server", "date")]
            return (r.status, data, r.getheader("Content-Type", "text/xml"), headers)
        except OSError as e:
            sys.stderr.write("ec2proxy: forwarding to moto failed: %s\n" % e)
            return (502, "<html><body>502 Bad Gateway (moto unreachable)</body></html>\n", "text/html", ())
        finally:
            c.close()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def node_imds(st, instance):
    """The IMDS of one instance, on a port of its own (made once)."""
    with st.lock:
        srv = st.nodes.get(instance)
        if srv is None:
            handler = type("NodeHandler", (Handler,), {"instance": instance})
            srv = Server(("127.0.0.1", 0), handler)
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            st.nodes[instance] = srv
    return {"id": instance, "url": "http://127.0.0.1:%d" % srv.server_address[1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moto", required=True, help="moto_server URL, http://127.0.0.1:PORT")
    ap.add_argument("--ready-file", required=True, help="written (by rename) once listening")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--wait", type=float, default=20, help="seconds to wait for moto to accept connections")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    moto = Moto(a.moto, a.region)
    try:
        moto.wait(a.wait)
        user_key = moto.bootstrap()
        state = State(moto, user_key)
    except (RuntimeError, OSError, KeyError, ET.ParseError) as e:
        sys.stderr.write("ec2proxy: bootstrap against moto failed: %s\n" % e)
        return 1
    Handler.state = state
    srv = Server(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    ready = {"port": port, "moto": a.moto, "region": a.region, "access_key_id": user_key[0],
             "secret_access_key": user_key[1], "role": ROLE, "pid": os.getpid()}
    tmp = a.ready_file + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(ready, fh)
    os.rename(tmp, a.ready_file)
    sys.stderr.write("ec2proxy: listening on 127.0.0.1:%d, moto %s\n" % (port, a.moto))
    sys.stderr.flush()
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
