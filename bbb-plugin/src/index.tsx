/*
 * The bundle's entry point. BigBlueButton's client adds this script with the
 * attributes uuid and pluginName after creating window.bbb_plugins[uuid]
 * and a <div id={uuid}>; here: where Tolk is (our own address), the
 * participant's identity for Tolk (BigBlueButton's session token), the
 * panel's styles, and the root component.
 */
import { createRoot } from 'react-dom/client';
import { BbbPluginSdk } from 'bigbluebutton-html-plugin-sdk';
import { TolkApi } from './api';
import { Store } from './store';
import { scriptAddress, tolkBase } from './tolk-base';
import { TolkPlugin } from './plugin';
import styles from './tolk-bbb.css';

const script = document.currentScript as HTMLScriptElement | null;
// BigBlueButton 3.0's first loader named the attribute elementId, later ones uuid.
const uuid = (script && (script.getAttribute('uuid') || script.getAttribute('elementId'))) || 'TolkInterpretation';
const pluginName = (script && script.getAttribute('pluginName')) || 'TolkInterpretation';
const base = tolkBase(scriptAddress(script, uuid));

function mountPoint(): HTMLElement {
  const found = document.getElementById(uuid);
  if (found) return found;
  const div = document.createElement('div');
  div.id = uuid;
  document.body.append(div);
  return div;
}

function addStyles(): void {
  if (document.querySelector('style[data-tolk-styles]')) return;
  const style = document.createElement('style');
  style.dataset.tolkStyles = '';
  style.textContent = styles;
  document.head.append(style);
}

const pluginApi = BbbPluginSdk.getPluginApi(uuid, pluginName);
const api = new TolkApi(base, () => pluginApi.getSessionToken && pluginApi.getSessionToken());
const store = new Store(api, (level) => {
  // A BBB 3.0 client older than the SDK's setSpeakerLevel has no such command: the
  // interpretation still plays, the meeting keeps its own level.
  BbbPluginSdk.getPluginApi(uuid).uiCommands?.conference?.setSpeakerLevel?.({ level });
});

addStyles();
createRoot(mountPoint()).render(<TolkPlugin uuid={uuid} store={store} />);
