#!/usr/bin/env python3
"""A quick walk through the plugin's flows in the stand-in, against dev/serve.py's stub
(no media: WHEP answers 503, so the status line shows the retry). Prints what it saw;
stops at the first thing that does not happen. Needs bbb-plugin/dist/, chromium, chromedriver.

  python3 tests/web/bbb-client/dev/flows.py
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import screenshots as S  # noqa: E402  (the server and browser helpers)

empty, base = S.server()
b = S.Browser()
def setval(css, v, ev='input', proto='HTMLInputElement'):
    b.js("const i=document.querySelector(arguments[0]);const set=Object.getOwnPropertyDescriptor(window[arguments[3]].prototype,'value').set;set.call(i,arguments[1]);i.dispatchEvent(new Event(arguments[2],{bubbles:true}));", css, v, ev, proto)
try:
    S.join(b, base, "mod"); S.open_panel(b)
    b.wait("return !!document.querySelector('select[data-tolk=\"add-language\"]')")
    setval('select[data-tolk="add-language"]', 'fr', 'change', 'HTMLSelectElement')
    b.click('[data-tolk="start-interpretation"]')
    b.wait("return !!document.querySelector('[data-tolk=\"running\"]')"); print("started: running view shown")
    b.wait("return document.querySelectorAll('[data-tolk=\"interpreter-user\"] option').length > 1"); 
    setval('[data-tolk="interpreter-user"]', 'w_ana', 'change', 'HTMLSelectElement')
    b.click('[data-tolk="interpreter-language"][data-language="fr"]')
    b.click('[data-tolk="name-interpreter"]')
    b.wait("return !!document.querySelector('[data-tolk=\"interpreter\"][data-user-id=\"w_ana\"]')"); print("named: Ana listed")
    print("on air fr:", b.js("return document.querySelector('[data-tolk=\"channel-row\"][data-language=\"fr\"] [data-tolk=\"on-air\"]').textContent"))
    b.click('[data-tolk="booth-link-language"][data-language="fr"]')
    b.click('[data-tolk="create-booth-link"]')
    b.wait("return !!document.querySelector('[data-tolk=\"booth-link-url\"]')"); print("booth link:", b.js("return document.querySelector('[data-tolk=\"booth-link-url\"]').value"))
    b.click('[data-standin="actions-bar-button"][aria-label^="Interpretation"]')  # close
    b.wait("return !document.querySelector('[data-tolk=\"panel\"]')"); print("panel closed by the actions-bar button")
    S.join(b, base, "interp"); S.open_panel(b)
    b.click('[data-tolk="open-booth"]'); time.sleep(1.5)
    print("windows after Open my booth:", len(b.s("GET", "/window/handles")))
    b.click('[data-tolk="open-booth"]'); time.sleep(1)
    print("windows after a second click:", len(b.s("GET", "/window/handles")))
    S.join(b, base, "view"); S.open_panel(b)
    b.click('[data-tolk="choice"][data-language="fr"]'); b.wait("return window.standin.speakerLevel < 1")
    print("level after fr:", b.js("return window.standin.speakerLevel"))
    setval('[data-tolk="original-volume"]', '40', 'input')
    time.sleep(0.3); print("level after slider 40:", b.js("return window.standin.speakerLevel"), "stored:", b.js("return localStorage.getItem('tolk.bbb.original')"))
    time.sleep(2); print("status:", b.js("return document.querySelector('[data-tolk=\"status\"]').dataset.state + ' | ' + document.querySelector('[data-tolk=\"status\"]').textContent"))
    b.click('[data-tolk="choice"][data-language="original"]'); time.sleep(0.3)
    print("level after Original:", b.js("return window.standin.speakerLevel"), "| tooltip:", b.js("return document.querySelector('[data-test=\"tolk-listen\"]').getAttribute('aria-label')"))
    print("commands:", [e['detail'] for e in b.js("return window.standin.log.filter(e => e.kind === 'command')")])
    S.join(b, base, "mod"); S.open_panel(b)
    b.click('[data-tolk="stop-interpretation"]'); b.click('[data-tolk="confirm-stop"]')
    b.wait("return !!document.querySelector('[data-tolk=\"start-form\"]')"); print("stopped: start form back")
    b.go("%s/html5client/join?sessionToken=view&audio=1" % base)
    b.wait("return document.body.dataset.ready === 'plugins'")
    time.sleep(1.5); print("viewer without interpretation, actions-bar items:", b.js("return window.standin.items.actionsBar.length"), "errors:", b.js("return window.standin.errors"))
finally:
    b.quit(); empty.terminate()
