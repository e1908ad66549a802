/*
 * BBB-client stand-in: the plugin SDK's ui commands other than the speaker
 * level (meeting-audio.js acts on that one). The SDK sends each as a window
 * event named after the command (src/ui-commands/<area>/enums.ts); BigBlueButton
 * acts on them, the stand-in records them in window.standin.log (kind
 * "command") and says so in the log area.
 */
import { record, show } from './record.js';

const COMMANDS = [
  'OPEN_SIDEKICK_OPTIONS_CONTAINER_COMMAND', 'CLOSE_SIDEKICK_OPTIONS_CONTAINER_COMMAND',
  'OPEN_PRESENTATION_AREA_COMMAND', 'CLOSE_PRESENTATION_AREA_COMMAND',
  'OPEN_CHAT_FORM_COMMAND', 'FILL_CHAT_FORM_COMMAND', 'SEND_NOTIFICATION_COMMAND',
  'SET_AWAY_USER_STATUS_COMMAND', 'SET_DISPLAY_ACTIONS_BAR_COMMAND', 'SET_DISPLAY_NAV_BAR_COMMAND',
  'SET_EXTERNAL_VIDEO_VOLUME_COMMAND', 'SET_SELF_VIEW_DISABLED_COMMAND',
  'SET_SELF_VIEW_DISABLED_ALL_DEVICES_COMMAND', 'SET_ENABLED_DISPLAY_COMMAND', 'CHANGE_ENFORCED_LAYOUT',
];

export function recordUiCommands() {
  for (const name of COMMANDS) {
    window.addEventListener(name, (e) => {
      record('command', name, e.detail === undefined ? undefined : e.detail);
      show('info', `The plugin sent ${name}`);
    });
  }
}
