/*
 * BBB-client stand-in: drawing what plugins put into BigBlueButton's
 * extensible areas, so a test can see and click it.
 *   actions bar        buttons (round, icon, the tooltip as title and
 *                      aria-label), separators, selectors, toggle groups,
 *                      left or right of the bar
 *   audio settings     options and separators in the menu next to the
 *                      microphone, present only while audio is joined
 *   floating windows   positioned boxes (top, left, backgroundColor,
 *                      boxShadow, movable), the content rendered by the
 *                      plugin's contentFunction(element) into it; its root is
 *                      unmounted when the window goes
 *   generic content    sidekick items as buttons in the sidebar that open a
 *                      side panel, main-area items over the presentation
 * Every element carries data-standin= (what it is) and data-item-id= (the
 * id BigBlueButton gave the item). Drawing waits a tick, as React's state
 * updates in BigBlueButton do, so a plugin never unmounts a root while it
 * renders.
 */
import { icon } from './icons.js';
import { record, show } from './record.js';

export class Areas {
  constructor(el) {
    this.el = el; // { actionsLeft, actionsRight, audioMenu, floating, sidekickNav, sidekick, mainArea }
    this.byPlugin = new Map(); // uuid → { area → items }
    this.roots = new Map(); // element → root returned by contentFunction
    this.pending = new Set();
    this.openSidekick = null; // id of the open generic sidekick item
  }

  set(uuid, area, items) {
    if (!this.byPlugin.has(uuid)) this.byPlugin.set(uuid, {});
    this.byPlugin.get(uuid)[area] = items;
    this.pending.add(area);
    setTimeout(() => this.flush(), 0);
  }

  all(area) {
    const out = [];
    for (const areas of this.byPlugin.values()) out.push(...(areas[area] || []));
    return out;
  }

  flush() {
    const areas = [...this.pending];
    this.pending.clear();
    for (const area of areas) {
      try {
        if (area === 'actionsBar') this.drawActionsBar();
        else if (area === 'audioSettingsDropdown') this.drawAudioMenu();
        else if (area === 'floatingWindows') this.drawFloating();
        else if (area === 'genericContent') this.drawGeneric();
      } catch (err) {
        show('error', `Drawing ${area} failed: ${err && err.message}`);
      }
    }
  }

  /* -------------------------------------------------------- actions bar */

  drawActionsBar() {
    const left = [];
    const right = [];
    for (const item of this.all('actionsBar')) {
      const el = this.actionsBarItem(item);
      if (!el) continue;
      (item.position === 'left' ? left : right).push(el);
    }
    this.el.actionsLeft.replaceChildren(...left);
    this.el.actionsRight.replaceChildren(...right);
  }

  actionsBarItem(item) {
    switch (item.type) {
      case 'ACTIONS_BAR_BUTTON': {
        const b = button('round-button', item, 'actions-bar-button');
        b.title = item.tooltip || '';
        b.setAttribute('aria-label', item.tooltip || '');
        b.append(icon(item.icon));
        b.addEventListener('click', () => click('actions-bar-button', item, () => item.onClick()));
        return b;
      }
      case 'ACTIONS_BAR_SEPARATOR': {
        const s = document.createElement('span');
        s.className = 'actions-bar__separator';
        s.dataset.standin = 'actions-bar-separator';
        return s;
      }
      case 'ACTIONS_BAR_SELECTOR': {
        const sel = element('select', 'actions-bar__select', item, 'actions-bar-selector');
        sel.title = item.title || '';
        sel.style.width = `${item.width || 140}px`;
        for (const o of item.options || []) sel.append(new Option(o.label, String(o.value)));
        if (item.defaultOption) sel.value = String(item.defaultOption.value);
        sel.addEventListener('change', (e) => click('actions-bar-selector', item, () => item.onChange(sel.value, e)));
        return sel;
      }
      case 'ACTIONS_BAR_TOGGLE_GROUP': {
        const g = element('span', 'actions-bar__toggles', item, 'actions-bar-toggle-group');
        for (const o of item.options || []) {
          const b = document.createElement('button');
          b.type = 'button';
          b.textContent = o.label;
          b.setAttribute('aria-pressed', String(item.defaultOption && item.defaultOption.value === o.value));
          b.addEventListener('click', (e) => click('actions-bar-toggle', item, () => item.onChange(o.value, e)));
          g.append(b);
        }
        return g;
      }
      default:
        return null;
    }
  }

  /* ----------------------------------------------------- audio settings */

  drawAudioMenu() {
    const els = [];
    for (const item of this.all('audioSettingsDropdown')) {
      if (item.type === 'AUDIO_SETTINGS_DROPDOWN_SEPARATOR') {
        const hr = document.createElement('hr');
        hr.dataset.standin = 'audio-separator';
        els.push(hr);
      } else if (item.type === 'AUDIO_SETTINGS_DROPDOWN_OPTION') {
        const b = button('menu__item', item, 'audio-option');
        b.setAttribute('role', 'menuitem');
        b.append(icon(item.icon), text(item.label));
        b.addEventListener('click', () => {
          this.el.audioMenu.hidden = true;
          click('audio-option', item, () => item.onClick());
        });
        els.push(b);
      }
    }
    this.el.audioPluginItems.replaceChildren(...els);
  }

  /* --------------------------------------------------- floating windows */

  drawFloating() {
    const items = this.all('floatingWindows');
    const keep = new Set(items);
    for (const box of [...this.el.floating.children]) {
      if (!keep.has(box.standinItem)) this.unmount(box);
    }
    const present = new Set([...this.el.floating.children].map((b) => b.standinItem));
    for (const item of items) {
      if (present.has(item)) continue;
      const box = element('div', 'floating-window', item, 'floating-window');
      box.standinItem = item;
      box.style.top = `${item.top || 0}px`;
      box.style.left = `${item.left || 0}px`;
      if (item.backgroundColor) box.style.background = item.backgroundColor;
      if (item.boxShadow) box.style.boxShadow = item.boxShadow;
      if (item.movable) movable(box);
      this.el.floating.append(box);
      this.mount(box, item);
    }
  }

  /* ---------------------------------------------------- generic content */

  drawGeneric() {
    const items = this.all('genericContent');
    const side = items.filter((i) => i.type === 'GENERIC_CONTENT_SIDEKICK_AREA');
    const main = items.filter((i) => i.type === 'GENERIC_CONTENT_MAIN_AREA');
    this.el.sidekickNav.replaceChildren(...side.map((item) => {
      const b = button('sidekick-nav__item', item, 'sidekick-button');
      b.append(icon(item.buttonIcon), text(item.name || 'Plugin'));
      b.setAttribute('aria-pressed', String(this.openSidekick === item.id));
      b.addEventListener('click', () => click('sidekick-button', item, () => this.toggleSidekick(item)));
      return b;
    }));
    const lastOpen = side.slice().reverse().find((i) => i.open);
    if (lastOpen) this.openSidekick = lastOpen.id;
    if (!side.some((i) => i.id === this.openSidekick)) this.openSidekick = null;
    this.showSidekick(side.find((i) => i.id === this.openSidekick) || null);
    this.replaceContent(this.el.mainArea, main[0] || null, 'generic-main');
  }

  toggleSidekick(item) {
    this.openSidekick = this.openSidekick === item.id ? null : item.id;
    this.drawGeneric();
  }

  showSidekick(item) {
    this.el.sidekick.hidden = !item;
    this.replaceContent(this.el.sidekick, item, 'generic-sidekick');
  }

  replaceContent(container, item, kind) {
    const current = container.firstElementChild;
    if (current && current.standinItem === item) return;
    if (current) this.unmount(current);
    if (!item) return;
    const box = element('div', 'generic-content', item, kind);
    box.standinItem = item;
    container.append(box);
    this.mount(box, item);
  }

  /* -------------------------------------------------------------- roots */

  mount(box, item) {
    try {
      this.roots.set(box, item.contentFunction(box));
      record('render', item.type, { id: item.id });
    } catch (err) {
      show('error', `The plugin's contentFunction failed: ${err && err.message}`);
    }
  }

  unmount(box) {
    const root = this.roots.get(box);
    this.roots.delete(box);
    if (root && typeof root.unmount === 'function') {
      try { root.unmount(); } catch (_) { /* already gone */ }
    }
    box.remove();
  }
}

// An element for a plugin's item: what it is (data-standin) and its id (data-item-id).
function element(tag, className, item, kind) {
  const el = document.createElement(tag);
  el.className = className;
  el.dataset.standin = kind;
  el.dataset.itemId = item.id || '';
  if (item.dataTest) el.dataset.test = item.dataTest; // BigBlueButton's data-test
  return el;
}

function button(className, item, kind) {
  const b = element('button', className, item, kind);
  b.type = 'button';
  return b;
}

function text(s) {
  const span = document.createElement('span');
  span.textContent = s || '';
  return span;
}

function click(kind, item, fn) {
  record('click', kind, { id: item.id, label: item.label || item.tooltip || item.name });
  try {
    fn();
  } catch (err) {
    show('error', `The plugin's handler failed: ${err && err.message}`);
  }
}

// Drag a floating window by any part that is not a control.
function movable(box) {
  box.addEventListener('pointerdown', (e) => {
    if (e.button !== 0 || e.target.closest('button, input, select, textarea, label, a, output, [role="slider"]')) return;
    const startX = e.clientX - box.offsetLeft;
    const startY = e.clientY - box.offsetTop;
    const move = (m) => {
      box.style.left = `${Math.max(0, m.clientX - startX)}px`;
      box.style.top = `${Math.max(0, m.clientY - startY)}px`;
    };
    const up = () => {
      window.removeEventListener('pointermove', move);
      window.removeEventListener('pointerup', up);
    };
    window.addEventListener('pointermove', move);
    window.addEventListener('pointerup', up);
  });
}
