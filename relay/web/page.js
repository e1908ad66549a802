/*
 * Tolk page module: what the pages read from their own markup and address,
 * shared by the listener, booth and organiser pages.
 *
 * This file owns: looking elements up by id ($), the root URL the server is
 * mounted at (so every URL works behind a path prefix such as /tolk/), and
 * the value the server templated into a page (the event id, the booth
 * token), with the page's path as the fallback.
 */

export const $ = (id) => document.getElementById(id);

// For a page at {root}/{kind}/{value}: {root}, which everything else hangs off.
export function pageRoot() {
  return new URL(location.pathname.endsWith("/") ? "../../" : "../", location.href);
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
