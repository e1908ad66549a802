#!/usr/bin/env python3
"""Development server for the BBB-client stand-in and Tolk's BBB plugin.

Serves, on one origin (no CORS in the way):
  /html5client/join?sessionToken=T   the stand-in page (../index.html), its files at /html5client/<file>
  /bigbluebutton/api/enter           from fixtures/enter.json by token (mod, view, interp)
  /bigbluebutton/api/stand-in/plugins  the plugin at /bbb-plugin/TolkInterpretation.js (--sdk 0.0: the 0.0 bundle)
  /bigbluebutton/api/stand-in/users  fixtures/users.json
  /bbb-plugin/<file>                 bbb-plugin/dist/
  /api/v1/bbb/...                    a stub of Tolk's plugin API, state in memory
  /api/v1/languages                  fixtures/languages.json
  /whep/...                          503 problem+json: the stub has no media

  python3 tests/web/bbb-client/dev/serve.py [--port 8099] [--running] [--sdk 0.1|0.0]
Then open http://127.0.0.1:8099/html5client/join?sessionToken=mod&audio=1
"""
import argparse
import json
import mimetypes
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = os.path.dirname(HERE)
REPO = os.path.abspath(os.path.join(PAGE, "..", "..", ".."))
DIST = os.path.join(REPO, "bbb-plugin", "dist")


def fixture(name):
    with open(os.path.join(HERE, "fixtures", name), encoding="utf-8") as f:
        return json.load(f)


ENTER = fixture("enter.json")
USERS = fixture("users.json")
LANGUAGES = {l["code"]: l["label"] for l in fixture("languages.json")}


class Tolk:
    """The stub's view of the meeting: one interpretation or none."""

    def __init__(self, running):
        self.interp = None
        self.interpreters = {}
        self.links = 0
        if running:
            self.start("en", ["fr", "de", "es"], 50)
            self.interpreters["w_ana"] = {"user_id": "w_ana", "name": "Ana Moreau", "languages": ["fr"]}

    def start(self, floor, languages, expected):
        self.interp = {"event": "ev-board", "title": "Annual board meeting", "floor_language": floor,
                       "languages": languages, "expected": expected}
        self.interpreters = {}

    def channels(self):
        i = self.interp
        on_air = {}
        for who in self.interpreters.values():
            for lang in who["languages"]:
                on_air.setdefault(lang, who["name"])
        chans = [{"language": i["floor_language"], "kind": "floor",
                  "label": LANGUAGES.get(i["floor_language"], i["floor_language"]), "speaking": "floor"}]
        for lang in i["languages"]:
            c = {"language": lang, "kind": "interpretation", "label": LANGUAGES.get(lang, lang),
                 "speaking": "interpreter" if lang in on_air else "floor"}
            if lang in on_air:
                c["interpreter"] = on_air[lang]
            chans.append(c)
        return {"event": {"id": i["event"], "title": i["title"]}, "channels": chans}

    def view(self, user):
        if not self.interp:
            return None
        i = self.interp
        mine = self.interpreters.get(user["internalUserID"], {}).get("languages", [])
        out = {"event": i["event"], "title": i["title"], "floor_language": i["floor_language"],
               "languages": i["languages"], "channels": self.channels(), "whep": "whep/%s/" % i["event"],
               "my_languages": mine}
        if user["role"] == "MODERATOR":
            counts = [12, 7, 4, 2, 1]
            out["interpreters"] = list(self.interpreters.values())
            out["listeners"] = {c["language"]: counts[n % len(counts)] for n, c in enumerate(out["channels"]["channels"])}
            out["floor"] = {"state": "live", "detail": "Hearing the meeting through its audio bridge."}
        return out


class Handler(BaseHTTPRequestHandler):
    server_version = "bbb-standin-dev"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.command, fmt % args))

    # ------------------------------------------------------------ replies
    def send(self, status, body=b"", ctype="application/json", headers=None):
        if isinstance(body, (dict, list)) or body is None:
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if body or status != 204:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def problem(self, status, detail):
        self.send(status, {"type": "about:blank", "title": detail, "status": status, "detail": detail},
                  "application/problem+json")

    def file(self, path):
        if not os.path.isfile(path):
            return self.problem(404, "No such file.")
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if path.endswith(".js"):
            ctype = "text/javascript"
        with open(path, "rb") as f:
            self.send(200, f.read(), ctype)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}") if n else {}

    # ------------------------------------------------------------ routes
    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def do_PUT(self):
        self.route()

    def do_DELETE(self):
        self.route()

    def route(self):
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        p = url.path
        if p == "/html5client/join":
            return self.file(os.path.join(PAGE, "index.html"))
        m = re.fullmatch(r"/html5client/([\w.-]+)", p)
        if m:
            return self.file(os.path.join(PAGE, m.group(1)))
        m = re.fullmatch(r"/bbb-plugin/([\w.-]+)", p)
        if m:
            return self.file(os.path.join(DIST, m.group(1)))
        if p.startswith("/bigbluebutton/api/"):
            return self.bbb(p[len("/bigbluebutton/api/"):], (q.get("sessionToken") or [""])[0])
        if p == "/api/v1/languages":
            return self.send(200, [{"code": c, "label": l} for c, l in LANGUAGES.items()])
        if p.startswith("/api/v1/bbb/"):
            return self.plugin_api(p[len("/api/v1/bbb/"):])
        if p.startswith("/whep/"):
            return self.problem(503, "This development stub has no media")
        return self.problem(404, "Not found.")

    def bbb(self, what, token):
        user = ENTER.get(token)
        if what == "enter":
            if not user:
                return self.send(200, {"response": {"returncode": "FAILED", "message": "Session not found"}})
            return self.send(200, user)
        if not user:
            return self.problem(401, "No such session.")
        if what == "stand-in/plugins":
            host = self.headers.get("Host", "127.0.0.1")
            name = "TolkInterpretation-0.0.js" if self.server.sdk == "0.0" else "TolkInterpretation.js"
            return self.send(200, [{"name": "TolkInterpretation", "url": "http://%s/bbb-plugin/%s" % (host, name)}])
        if what == "stand-in/users":
            return self.send(200, USERS)
        return self.problem(404, "Not found.")

    def plugin_api(self, what):
        entry = ENTER.get(self.headers.get("X-Session-Token", ""))
        if not entry:
            return self.problem(401, "BigBlueButton does not know this session")
        user = entry["response"]
        tolk = self.server.tolk
        moderator = user["role"] == "MODERATOR"
        if what == "me" and self.command == "GET":
            return self.send(200, {"meeting": {"id": user["meetingID"], "external_id": user["externMeetingID"]},
                                   "user": {"id": user["internalUserID"], "name": user["fullname"], "moderator": moderator},
                                   "interpretation": tolk.view(user)})
        if what == "booth" and self.command == "POST":
            if not tolk.interp or not tolk.interpreters.get(user["internalUserID"]):
                return self.problem(403, "You are not named interpreter in this meeting")
            return self.send(200, {"url": "http://%s/booth#token=dev-booth" % self.headers.get("Host")})
        if not what.startswith("interpretation"):
            return self.problem(404, "Not found.")
        if not moderator:
            return self.problem(403, "Only moderators run the interpretation")
        if what == "interpretation" and self.command == "POST":
            b = self.body()
            if tolk.interp:
                return self.problem(409, "An interpretation already runs in this meeting")
            if int(b.get("expected_listeners") or 0) > 200:
                return self.problem(409, "Tolk has room for 200 more listeners now: ask for 200 or fewer")
            tolk.start(b.get("floor_language", "en"), b.get("languages", []), b.get("expected_listeners", 50))
            return self.send(201, tolk.view(user))
        if what == "interpretation" and self.command == "DELETE":
            tolk.interp = None
            return self.send(204)
        if not tolk.interp:
            return self.problem(404, "No interpretation runs in this meeting")
        m = re.fullmatch(r"interpretation/interpreters/([^/]+)", what)
        if m and self.command == "PUT":
            b = self.body()
            tolk.interpreters[m.group(1)] = {"user_id": m.group(1), "name": b.get("name", ""), "languages": b.get("languages", [])}
            return self.send(200, tolk.interpreters[m.group(1)])
        if m and self.command == "DELETE":
            tolk.interpreters.pop(m.group(1), None)
            return self.send(204)
        if what == "interpretation/booth-links" and self.command == "POST":
            tolk.links += 1
            return self.send(201, {"url": "http://%s/booth#token=dev-external-%d" % (self.headers.get("Host"), tolk.links)})
        return self.problem(404, "Not found.")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8099)
    ap.add_argument("--running", action="store_true", help="start with an interpretation running (fr, de, es)")
    ap.add_argument("--sdk", choices=["0.1", "0.0"], default="0.1", help="which bundle the plugin list names")
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.tolk = Tolk(args.running)
    server.sdk = args.sdk
    print("http://127.0.0.1:%d/html5client/join?sessionToken=mod&audio=1" % args.port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
