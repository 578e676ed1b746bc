"""Drives the live page in a real headless Chromium over the DevTools protocol, as a person would.

    drive_live_page.py CHROMIUM PAGE_URL TOKEN WORKDIR

Steps, each reported as one line of JSON on standard output:
1. loads the page and waits until the connection table shows LIVE-GOOD (screenshot page-loaded.png),
   then writes WORKDIR/ready: the test sends a faulty message now;
2. waits until the deviation feed shows a deviation of LIVE-BAD and says how long that took after `ready`
   (screenshot deviation-shown.png);
3. opens LIVE-BAD's messages and waits for its BootNotification there, in the other theme
   (screenshot messages-other-theme.png);
4. types the admin token into the page's token field, presses LIVE-GOOD's disconnect button and waits
   until its row is gone (screenshot after-disconnect.png); the page's alerts are recorded, not shown.
Exits 0 when every step was seen, 1 otherwise.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

from websockets.sync.client import connect


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def report(**fields):
    print(json.dumps(fields), flush=True)


class Page:
    def __init__(self, url):
        self.ws = connect(url, max_size=64 << 20)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.evaluate(expression):
                return True
            time.sleep(0.1)
        return False

    def screenshot(self, path):
        import base64
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))


def main():
    chromium, page_url, token, workdir = sys.argv[1:5]
    port = free_port()
    browser = subprocess.Popen(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         f"--remote-debugging-port={port}", f"--user-data-dir={workdir}/profile", "--window-size=1400,900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=open(f"{workdir}/chromium.log", "w"),
    )
    ok = False
    try:
        targets = None
        for _ in range(200):
            try:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2))
                if any(t.get("type") == "page" for t in targets):
                    break
            except OSError:
                pass
            time.sleep(0.1)
        target = next(t for t in targets if t.get("type") == "page")
        page = Page(target["webSocketDebuggerUrl"])
        page.call("Page.enable")
        page.call("Runtime.enable")
        started = time.monotonic()
        page.call("Page.navigate", url=page_url)
        rows = "[...document.querySelectorAll('#connections tbody tr')]"
        loaded = page.wait_for(f"{rows}.some(r => r.dataset.chargePoint === 'LIVE-GOOD')", 20)
        checks_shown = page.wait_for("!document.getElementById('checks').hidden", 10)
        page.evaluate("window.alerts = []; window.alert = (m) => window.alerts.push(String(m)); true")
        page.screenshot(f"{workdir}/page-loaded.png")
        report(step="loaded", ok=loaded, seconds=round(time.monotonic() - started, 2),
               text=page.evaluate("document.querySelector('#connections').innerText"),
               checks=page.evaluate("document.querySelector('#verdicts').innerText") if checks_shown else None)
        if not loaded:
            return 1
        open(f"{workdir}/ready", "w").close()
        asked = time.monotonic()
        feed = "[...document.querySelectorAll('#deviations tbody tr')]"
        shown = page.wait_for(f"{feed}.some(r => r.innerText.includes('LIVE-BAD'))", 20)
        page.screenshot(f"{workdir}/deviation-shown.png")
        report(step="deviation", ok=shown, seconds=round(time.monotonic() - asked, 2),
               text=page.evaluate("document.querySelector('#deviations tbody').innerText"))
        if not shown:
            return 1
        page.evaluate(f"{rows}.find(r => r.dataset.chargePoint === 'LIVE-BAD').querySelector('button').click(); true")
        listed = page.wait_for("document.querySelector('#messages').innerText.includes('BootNotification')", 20)
        page.evaluate("document.getElementById('theme').click(); true")
        page.screenshot(f"{workdir}/messages-other-theme.png")
        report(step="messages", ok=listed, text=page.evaluate("document.querySelector('#messages').innerText"))
        page.evaluate("document.getElementById('theme').click(); true")
        page.evaluate(f"document.getElementById('token').value = {json.dumps(token)}; true")
        page.evaluate(f"{rows}.find(r => r.dataset.chargePoint === 'LIVE-GOOD').querySelector('button.disconnect').click(); true")
        gone = page.wait_for(f"!{rows}.some(r => r.dataset.chargePoint === 'LIVE-GOOD')", 20)
        page.screenshot(f"{workdir}/after-disconnect.png")
        report(step="disconnect", ok=gone, alerts=page.evaluate("window.alerts"),
               text=page.evaluate("document.querySelector('#connections').innerText"))
        ok = loaded and shown and listed and gone
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
