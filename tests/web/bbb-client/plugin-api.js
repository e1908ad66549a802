/*
 * BBB-client stand-in: the object BigBlueButton prepares for each plugin,
 * window.bbb_plugins[uuid], before it loads the plugin's script.
 *
 * As the SDK's BbbPluginSdk.getPluginApi (core/api/BbbPluginSdk.ts) would
 * create it, and with every extensible area's setter taken over the way
 * BigBlueButton's area managers do
 * (plugins-engine/extensible-areas/components/<area>/manager.tsx): each
 * item gets its id through item.setItemId(String(index)), the list is kept
 * and drawn (areas.js), and the setter returns the ids. The plugin's
 * BbbPluginSdk.initialize(uuid) adds the hooks and ui commands to the same
 * object.
 */
import { describe, record } from './record.js';

// setter name → the area's name in window.standin.items
export const SETTERS = {
  setActionsBarItems: 'actionsBar',
  setAudioSettingsDropdownItems: 'audioSettingsDropdown',
  setFloatingWindows: 'floatingWindows',
  setGenericContentItems: 'genericContent',
  setActionButtonDropdownItems: 'actionButtonDropdown',
  setAppsGalleryItems: 'appsGallery',
  setCameraSettingsDropdownItems: 'cameraSettingsDropdown',
  setNavBarItems: 'navBar',
  setOptionsDropdownItems: 'optionsDropdown',
  setPresentationDropdownItems: 'presentationDropdown',
  setPresentationToolbarItems: 'presentationToolbar',
  setScreenshareHelperItems: 'screenshareHelper',
  setUserCameraDropdownItems: 'userCameraDropdown',
  setUserCameraHelperItems: 'userCameraHelper',
  setUserListDropdownItems: 'userListDropdown',
  setUserListItemAdditionalInformation: 'userListItemAdditionalInformation',
};

// onItems(pluginUuid, area, items) draws an area after a setter call.
export function preparePluginApi(uuid, pluginName, sessionToken, onItems) {
  if (!window.bbb_plugins) window.bbb_plugins = {};
  const api = {
    pluginName,
    getSessionToken: () => sessionToken,
    mapOfPushEntryFunctions: { '': () => {} },
  };
  for (const [setter, area] of Object.entries(SETTERS)) {
    api[setter] = (items) => {
      const list = Array.isArray(items) ? items : [];
      list.forEach((item, index) => {
        if (item && typeof item.setItemId === 'function') item.setItemId(String(index));
      });
      const plain = list.map(describe);
      window.standin.items[area] = plain;
      record('setter', setter, plain);
      onItems(uuid, area, list);
      return list.map((item) => item && item.id);
    };
  }
  window.bbb_plugins[uuid] = api;
  return api;
}
