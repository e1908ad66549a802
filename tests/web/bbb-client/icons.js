/*
 * BBB-client stand-in: a few of BigBlueButton's icons (its icon font's
 * names: listen, popout_window, check, settings, user, …) as small SVGs of
 * our own, so plugin items look like buttons and not like text. An unknown
 * name shows its first letter.
 */
const PATHS = {
  listen: 'M4 13v-1a8 8 0 0 1 16 0v1M4 13h3v6H5a1 1 0 0 1-1-1zM20 13h-3v6h2a1 1 0 0 0 1-1z',
  popout_window: 'M14 4h6v6M20 4l-8 8M18 14v5H5V6h5',
  check: 'M5 12.5l4.5 4.5L19 7',
  settings: 'M12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6zM12 2v3M12 19v3M2 12h3M19 12h3M4.9 4.9l2.1 2.1M17 17l2.1 2.1M4.9 19.1L7 17M17 7l2.1-2.1',
  user: 'M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM4 21a8 8 0 0 1 16 0',
  copy: 'M8 8h11v11H8zM5 16V5h11',
  audio_on: 'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5 11a7 7 0 0 0 14 0M12 18v3',
  audio_off: 'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5 11a7 7 0 0 0 14 0M12 18v3M3 3l18 18',
  video: 'M3 7h12v10H3zM15 10l6-3v10l-6-3',
  desktop: 'M3 4h18v12H3zM8 20h8M12 16v4',
  plus: 'M12 5v14M5 12h14',
  more: 'M6 12h.01M12 12h.01M18 12h.01',
  warning: 'M12 3l10 18H2zM12 10v5M12 18h.01',
};

const NS = 'http://www.w3.org/2000/svg';

// The icon for a name (string) or an SDK 0.0.x icon object ({ iconName }).
export function icon(nameOrObject) {
  const name = typeof nameOrObject === 'string' ? nameOrObject : (nameOrObject && nameOrObject.iconName) || '';
  const path = PATHS[name];
  if (!path) {
    const span = document.createElement('span');
    span.className = 'icon icon--letter';
    span.textContent = name ? name[0].toUpperCase() : '';
    span.dataset.icon = name;
    return span;
  }
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  svg.dataset.icon = name;
  const p = document.createElementNS(NS, 'path');
  p.setAttribute('d', path);
  svg.append(p);
  return svg;
}
