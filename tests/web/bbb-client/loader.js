/*
 * BBB-client stand-in: loading a plugin the way BigBlueButton's plugin
 * loader does (plugins-engine/plugin-loader/manager.tsx, BigBlueButton 3.0
 * and 3.1): a <div id={uuid}> in the plugins' container, then a <script>
 * with src = the manifest's javascriptEntrypointUrl and the attributes uuid
 * and pluginName, appended to <head>. The pluginApi object must exist first
 * (plugin-api.js).
 */
import { record, show, standin } from './record.js';

export function newUuid() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `p-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

export function loadPlugin(container, uuid, plugin) {
  const div = document.createElement('div');
  div.id = uuid;
  container.append(div);
  const entry = { name: plugin.name, url: plugin.url, uuid, loaded: false };
  standin.plugins.push(entry);
  return new Promise((resolve) => {
    const script = document.createElement('script');
    script.onload = () => {
      entry.loaded = true;
      record('load', plugin.name, { url: plugin.url, uuid });
      show('info', `Loaded plugin ${plugin.name}`);
      resolve(true);
    };
    script.onerror = () => {
      record('error', 'plugin_load_error', { name: plugin.name, url: plugin.url });
      show('error', `Error when loading plugin ${plugin.name} from ${plugin.url}`);
      resolve(false);
    };
    script.src = plugin.url;
    script.setAttribute('uuid', div.id);
    script.setAttribute('pluginName', plugin.name);
    document.head.append(script);
  });
}
