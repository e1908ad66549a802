#!/usr/bin/env python3
"""Screenshots of Tolk's BBB plugin in the BBB-client stand-in, for looking at.

Starts dev/serve.py (twice: one meeting with an interpretation running, one
without), drives headless Chromium through chromedriver's WebDriver HTTP API
(standard library only) and writes PNGs into bbb-plugin/screenshots/:
  listener-panel.png      a viewer opened the panel from the actions bar and chose a channel
  listener-audio-menu.png the audio settings menu with the channels
  interpreter-booth.png   a named interpreter's panel
  moderator-running.png   a moderator's controls of the running interpretation
  moderator-start.png     a moderator's start form (no interpretation yet)
  listener-sdk-0.0.png    the SDK 0.0 bundle (BigBlueButton 3.0) in the same place
Needs bbb-plugin/dist/ (scripts/build-plugin), chromium and chromedriver.

  python3 tests/web/bbb-client/dev/screenshots.py
"""
import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
OUT = os.path.join(REPO, "bbb-plugin", "screenshots")
ELEMENT = "element-6066-11e4-a52e-4f735466cecc"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=15):
    end = time.time() + seconds
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("nothing listens on %d" % port)


class Browser:
    """Just enough of WebDriver: navigate, find, click, run a script, screenshot."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(["chromedriver", "--port=%d" % self.port],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--window-size=1280,800", "--no-sandbox", "--disable-gpu",
                     "--autoplay-policy=no-user-gesture-required", "--hide-scrollbars"]}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                return json.load(res)["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError("%s %s: %s" % (method, path, e.read().decode()[:500]))

    def s(self, method, path, body=None):
        return self.call(method, "/session/%s%s" % (self.session, path), body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, script, seconds=10):
        end = time.time() + seconds
        while time.time() < end:
            if self.js(script):
                return
            time.sleep(0.1)
        raise RuntimeError("waited in vain for: " + script)

    def click(self, css):
        self.wait("return !!document.querySelector(arguments[0])".replace("arguments[0]", json.dumps(css)))
        found = self.s("POST", "/element", {"using": "css selector", "value": css})
        el = found.get(ELEMENT) or found.get("ELEMENT") or next(iter(found.values()))
        self.s("POST", "/element/%s/click" % el)

    def shot(self, name):
        png = base64.b64decode(self.s("GET", "/screenshot"))
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(png)
        print("wrote", os.path.join(OUT, name))

    def quit(self):
        try:
            self.s("DELETE", "")
        finally:
            self.proc.terminate()


def server(*args):
    port = free_port()
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "serve.py"), "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, "http://127.0.0.1:%d" % port


def join(b, base, token, audio=True):
    b.go("%s/html5client/join?sessionToken=%s%s" % (base, token, "&audio=1" if audio else ""))
    b.wait("return document.body.dataset.ready === 'plugins'")
    b.wait("return !!document.querySelector('[data-standin=\"actions-bar-button\"]')")


def open_panel(b):
    b.click('[data-standin="actions-bar-button"][aria-label^="Interpretation"]')
    b.wait("return !!document.querySelector('[data-tolk=\"panel\"]')")


def main():
    os.makedirs(OUT, exist_ok=True)
    running, base = server("--running")
    empty, base_empty = server()
    old, base_old = server("--running", "--sdk", "0.0")
    b = Browser()
    try:
        join(b, base, "view")
        open_panel(b)
        b.click('[data-tolk="choice"][data-language="fr"]')
        b.wait("return window.standin.speakerLevel < 1")
        time.sleep(1.2)
        b.shot("listener-panel.png")
        b.click('[data-tolk="close-panel"]')
        b.click('[data-standin="audio-settings"]')
        time.sleep(0.3)
        b.shot("listener-audio-menu.png")

        join(b, base, "interp")
        open_panel(b)
        time.sleep(0.3)
        b.shot("interpreter-booth.png")

        join(b, base, "mod")
        open_panel(b)
        b.js("document.querySelector('[data-tolk=\"moderator\"]').scrollIntoView()")
        time.sleep(0.5)
        b.shot("moderator-running.png")

        join(b, base_empty, "mod")
        open_panel(b)
        b.wait("return !!document.querySelector('select[data-tolk=\"add-language\"]')")
        for code in ("fr", "de"):
            b.js("const s = document.querySelector('select[data-tolk=\"add-language\"]');"
                 "const set = Object.getOwnPropertyDescriptor(HTMLSelectElement.prototype, 'value').set;"
                 "set.call(s, arguments[0]); s.dispatchEvent(new Event('change', {bubbles: true}));", code)
        b.js("const i = document.querySelector('[data-tolk=\"expected-listeners\"]');"
             "const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;"
             "set.call(i, '500'); i.dispatchEvent(new Event('input', {bubbles: true}));")
        b.click('[data-tolk="start-interpretation"]')
        b.wait("return !!document.querySelector('[data-tolk=\"start-error\"]')")
        time.sleep(0.3)
        b.shot("moderator-start.png")
        report(b, "SDK 0.1 bundle")

        join(b, base_old, "view")
        open_panel(b)
        b.click('[data-tolk="choice"][data-language="de"]')
        b.wait("return window.standin.speakerLevel < 1")
        time.sleep(1.2)
        b.shot("listener-sdk-0.0.png")
        report(b, "SDK 0.0 bundle")
    finally:
        b.quit()
        for proc in (running, empty, old):
            proc.terminate()


def report(b, what):
    errors = b.js("return window.standin.errors")
    print("%s: %s" % (what, "no plugin errors" if not errors else "plugin errors:"), *errors, sep="\n  ")


if __name__ == "__main__":
    main()
