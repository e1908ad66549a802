/*
 * Where Tolk is: the plugin's own script address. Tolk serves the bundle at
 * {tolk}/bbb-plugin/TolkInterpretation.js, so {tolk} is that address up to
 * (not including) "bbb-plugin/". A bundle served elsewhere takes its own
 * folder as {tolk}.
 */

export function tolkBase(scriptUrl: string): string {
  const url = new URL(scriptUrl);
  const at = url.pathname.lastIndexOf('/bbb-plugin/');
  url.pathname = at >= 0 ? url.pathname.slice(0, at + 1) : url.pathname.replace(/[^/]*$/, '');
  url.search = '';
  url.hash = '';
  return url.href;
}

// The address of this plugin's script tag: document.currentScript while the
// bundle first runs, else the tag BigBlueButton gave our uuid.
export function scriptAddress(current: HTMLScriptElement | null, uuid: string): string {
  if (current && current.src) return current.src;
  const id = CSS.escape(uuid);
  const tag = document.querySelector<HTMLScriptElement>(`script[uuid="${id}"], script[elementId="${id}"]`);
  return tag ? tag.src : document.baseURI;
}
