/*
 * Tolk page module: what the pages read from their own markup and address,
 * shared by the listener, booth and organiser pages.
 *
 * This file owns: looking elements up by id ($), the root URL the server is
 * mounted at (so every URL works behind a path prefix such as /tolk/), the
 * value the server templated into a page (the event id), with the page's path
 * as the fallback, and a secret the address carries in its fragment (the
 * booth token: browsers never send the fragment to a server), and waiting
 * for a state an event announces, with a time limit (until).
 */

export const $ = (id) => document.getElementById(id);

// For a page at {root}/{kind}/{value} (depth 2) or {root}/{kind} (depth 1):
// {root}, which everything else hangs off.
export function pageRoot(depth = 2) {
  const up = location.pathname.endsWith("/") ? depth : depth - 1;
  return new URL(up > 0 ? "../".repeat(up) : "./", location.href);
}

// The value of key in the address's fragment (#key=value&…), "" if absent.
export function fragment(key) {
  return new URLSearchParams(location.hash.replace(/^#/, "")).get(key) || "";
}

// The value the server put into <body data-{key}> in place of {{NAME}}; a
// page opened without the server's templating (development) takes it from
// its path, …/{kind}/{value}.
export function templated(key, name, kind) {
  const v = document.body.dataset[key] || "";
  if (v && v !== `{{${name}}}`) return v;
  const m = location.pathname.match(new RegExp(`/${kind}/([^/]+)/?$`));
  return m ? decodeURIComponent(m[1]) : "";
}

// Resolves once ready() holds: at once, or on one of target's `type` events,
// or after maxMs at the latest.
export function until(target, type, ready, maxMs) {
  if (ready()) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      target.removeEventListener(type, check);
      resolve();
    };
    const check = () => {
      if (ready()) done();
    };
    const timer = setTimeout(done, maxMs);
    target.addEventListener(type, check);
  });
}
