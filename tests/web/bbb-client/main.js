/*
 * BBB-client stand-in: the meeting page (index.html, served at
 * /html5client/join?sessionToken=T).
 *
 * This file owns the page's course: the session token from the address,
 * GET /bigbluebutton/api/enter (who is here, in which meeting), the header,
 * the user list (GET /bigbluebutton/api/stand-in/users every second), the
 * audio controls ("Join audio", or ?audio=1 to start joined), then, as
 * BigBlueButton's plugins engine does, window.bbb_plugins[uuid] for every
 * plugin of GET /bigbluebutton/api/stand-in/plugins and its script tag.
 * What the plugins do is drawn by areas.js and recorded in window.standin
 * (record.js).
 */
import { Areas } from './areas.js';
import { DataHooks } from './data-hooks.js';
import { icon } from './icons.js';
import { loadPlugin, newUuid } from './loader.js';
import { attachMeter, listenForSpeakerLevel, renderMeter, startTone, stopTone } from './meeting-audio.js';
import { preparePluginApi } from './plugin-api.js';
import { attachLog, catchErrors, record, show, standin } from './record.js';
import { recordUiCommands } from './ui-commands.js';

const USERS_EVERY_MS = 1000;
const $ = (id) => document.getElementById(id);

catchErrors();
attachLog($('log-lines'));

const params = new URLSearchParams(location.search);
const token = params.get('sessionToken') || '';
const api = (path) => `/bigbluebutton/api/${path}?sessionToken=${encodeURIComponent(token)}`;

async function getJson(path) {
  const res = await fetch(api(path), { headers: { Accept: 'application/json' }, cache: 'no-store' });
  if (!res.ok) throw new Error(`${path} answered ${res.status}`);
  return res.json();
}

/* ------------------------------------------------------------ header */

function showMeeting(enter) {
  document.title = `${enter.confname} · BigBlueButton`;
  $('meeting-name').textContent = enter.confname;
  $('user-name').textContent = enter.fullname;
  $('user-role').textContent = enter.role === 'MODERATOR' ? 'Moderator' : 'Viewer';
  $('user-role').dataset.role = enter.role;
  $('user-avatar').textContent = initials(enter.fullname);
  $('welcome-title').textContent = `Welcome to ${enter.confname}`;
}

function initials(name) {
  return String(name || '?').split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('');
}

/* ------------------------------------------------------------ users */

function showUsers(users) {
  $('users-count').textContent = String(users.length);
  $('users').replaceChildren(...users.map((u) => {
    const li = document.createElement('li');
    li.className = 'user';
    li.dataset.standin = 'user';
    li.dataset.userId = u.userId;
    const avatar = document.createElement('span');
    avatar.className = `avatar${u.role === 'MODERATOR' ? ' avatar--moderator' : ''}`;
    avatar.textContent = initials(u.name);
    const name = document.createElement('span');
    name.className = 'user__name';
    name.textContent = u.userId === standin.enter.internalUserID ? `${u.name} (You)` : u.name;
    li.append(avatar, name);
    return li;
  }));
}

function sameUsers(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function pollUsers(hooks) {
  try {
    const users = await getJson('stand-in/users');
    if (!sameUsers(users, standin.users)) {
      standin.users = users;
      showUsers(users);
      hooks.resend();
    }
  } catch (err) {
    show('warn', `The user list did not load: ${err.message}`);
  }
  setTimeout(() => pollUsers(hooks), USERS_EVERY_MS);
}

/* ------------------------------------------------------------ audio */

function setAudio(joined) {
  standin.audioJoined = joined;
  record('audio', joined ? 'joined' : 'left');
  $('join-audio').hidden = joined;
  $('audio-group').hidden = !joined;
  $('audio-menu').hidden = true;
  document.body.dataset.audio = joined ? 'joined' : 'none';
  if (joined) startTone();
  else stopTone();
  renderMeter();
}

function wireAudio() {
  $('join-audio').prepend(icon('audio_off'));
  $('mute').append(icon('audio_on'));
  $('join-audio').addEventListener('click', () => setAudio(true));
  $('leave-audio').addEventListener('click', () => setAudio(false));
  $('audio-settings').addEventListener('click', (e) => {
    e.stopPropagation();
    $('audio-menu').hidden = !$('audio-menu').hidden;
    $('audio-settings').setAttribute('aria-expanded', String(!$('audio-menu').hidden));
  });
  document.addEventListener('click', (e) => {
    if (!$('audio-menu').contains(e.target)) $('audio-menu').hidden = true;
  });
  for (const [id, name] of [['camera', 'video'], ['screenshare', 'desktop'], ['actions', 'plus']]) $(id).append(icon(name));
}

/* ------------------------------------------------------------ start */

async function main() {
  listenForSpeakerLevel();
  recordUiCommands();
  attachMeter($('speaker-level'));
  wireAudio();
  if (!token) {
    show('error', 'This address has no sessionToken: open /html5client/join?sessionToken=…');
    return;
  }
  let enter;
  try {
    const body = await getJson('enter');
    enter = body.response;
    if (!enter || enter.returncode !== 'SUCCESS') throw new Error((enter && enter.message) || 'enter did not succeed');
  } catch (err) {
    $('meeting-name').textContent = 'Could not join the meeting';
    show('error', `enter failed: ${err.message}`);
    return;
  }
  standin.enter = enter;
  showMeeting(enter);
  document.body.dataset.ready = 'meeting';

  const hooks = new DataHooks({ enter, users: () => standin.users });
  hooks.start();
  standin.users = await getJson('stand-in/users').catch(() => []);
  showUsers(standin.users);
  setTimeout(() => pollUsers(hooks), USERS_EVERY_MS);

  setAudio(params.get('audio') === '1');

  const areas = new Areas({
    actionsLeft: $('actions-left-plugins'),
    actionsRight: $('actions-right'),
    audioMenu: $('audio-menu'),
    audioPluginItems: $('audio-plugin-items'),
    floating: $('floating-layer'),
    sidekickNav: $('sidekick-nav'),
    sidekick: $('sidekick'),
    mainArea: $('main-area'),
  });
  let plugins = [];
  try {
    plugins = await getJson('stand-in/plugins');
  } catch (err) {
    show('error', `The plugin list did not load: ${err.message}`);
  }
  await Promise.all(plugins.map((plugin) => {
    const uuid = newUuid();
    preparePluginApi(uuid, plugin.name, token, (id, area, items) => areas.set(id, area, items));
    return loadPlugin($('plugins'), uuid, plugin);
  }));
  document.body.dataset.ready = 'plugins';
  record('ready', 'plugins', { count: plugins.length });
}

main();
