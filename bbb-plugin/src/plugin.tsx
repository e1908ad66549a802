/*
 * The plugin's root component, rendered once per meeting page: it
 * initialises BigBlueButton's plugin SDK, starts the store (Tolk's view of
 * the meeting, polled), feeds it the participants BigBlueButton lists, and
 * keeps BigBlueButton's extensible areas in step with the store:
 *   actions bar     the "Interpretation: <choice>" button (opens the panel),
 *                   "Open my booth" for interpreters (menus.ts decides who)
 *   audio settings  Original and each channel (BigBlueButton shows this
 *                   menu once the participant joined audio)
 *   floating window the panel (panel/Panel.tsx).
 *
 * Why a floating window and not a generic-content sidekick: the panel must
 * open when a listener picks a channel from the actions bar or the audio
 * menu. A floating window is shown and hidden by setFloatingWindows alone,
 * the same in SDK 0.0.x and 0.1.x; a sidekick panel opens only through its
 * `open` flag when registered, which BigBlueButton's releases honour
 * differently, and it would take the place of the chat or the user list.
 */
import { useEffect, useMemo, useSyncExternalStore, type ReactElement } from 'react';
import { createRoot } from 'react-dom/client';
import {
  ActionsBarButton, ActionsBarPosition, AudioSettingsDropdownOption, AudioSettingsDropdownSeparator,
  BbbPluginSdk, FloatingWindow,
} from 'bigbluebutton-html-plugin-sdk';
import { actionsBarIcon } from 'tolk-sdk-line';
import { actionsBar, anything, audioMenu, sections } from './menus';
import type { Store } from './store';
import type { Participant } from './types';
import { StoreContext } from './view';
import { Panel } from './panel/Panel';

const PANEL_WIDTH = 380;

export function TolkPlugin({ uuid, store }: { uuid: string; store: Store }): ReactElement | null {
  BbbPluginSdk.initialize(uuid);
  const pluginApi = BbbPluginSdk.getPluginApi(uuid);
  const state = useSyncExternalStore(store.subscribe, store.get);

  // The meeting's participants, to name interpreters from.
  const users = pluginApi.useUsersBasicInfo ? pluginApi.useUsersBasicInfo() : null;
  useEffect(() => {
    const list = (users && users.data && Array.isArray(users.data.user) ? users.data.user : []) as Participant[];
    store.setParticipants(list.filter((u) => u && u.userId));
  }, [users, store]);

  useEffect(() => store.start(), [store]);

  const bar = useMemo(() => actionsBar(state.me, state.choice), [state.me, state.choice]);
  const barKey = JSON.stringify(bar);
  useEffect(() => {
    pluginApi.setActionsBarItems(bar.map((spec) => new ActionsBarButton({
      icon: actionsBarIcon(spec.icon),
      tooltip: spec.tooltip,
      dataTest: `tolk-${spec.key}`,
      position: ActionsBarPosition.RIGHT,
      onClick: spec.key === 'booth' ? () => void store.openBooth() : store.togglePanel,
    })));
  }, [barKey]); // eslint-disable-line react-hooks/exhaustive-deps

  const menu = useMemo(() => audioMenu(state.me, state.choice), [state.me, state.choice]);
  const menuKey = JSON.stringify(menu);
  useEffect(() => {
    const items = menu.map((o) => new AudioSettingsDropdownOption({
      label: o.label,
      icon: o.current ? 'check' : 'listen',
      dataTest: `tolk-listen-${o.choice || 'original'}`,
      onClick: () => {
        store.choose(o.choice);
        if (o.choice !== null) store.openPanel();
      },
    }));
    pluginApi.setAudioSettingsDropdownItems(items.length ? [new AudioSettingsDropdownSeparator(), ...items] : []);
  }, [menuKey]); // eslint-disable-line react-hooks/exhaustive-deps

  const visible = state.panelOpen && anything(sections(state.me));
  useEffect(() => {
    if (!visible) {
      pluginApi.setFloatingWindows([]);
      return;
    }
    pluginApi.setFloatingWindows([new FloatingWindow({
      top: 72,
      left: Math.max(16, window.innerWidth - PANEL_WIDTH - 24),
      movable: true,
      backgroundColor: '#ffffff',
      boxShadow: '0 8px 24px rgba(6, 23, 42, 0.25)',
      dataTest: 'tolk-panel-window',
      contentFunction: (element: HTMLElement) => {
        const root = createRoot(element);
        root.render(<StoreContext.Provider value={store}><Panel /></StoreContext.Provider>);
        return root;
      },
    })]);
  }, [visible]); // eslint-disable-line react-hooks/exhaustive-deps

  return null;
}
