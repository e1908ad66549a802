/*
 * BBB-client stand-in: the plugin SDK's data hooks and ui data, answered as
 * BigBlueButton's plugins-engine answers them.
 *
 * The SDK's hook (data-consumption/factory/hookCreator.ts) dispatches
 * PLUGIN_SUBSCRIBED_TO_BBB_CORE {hook, hookArguments} on mount and listens
 * for BBB_CORE_SENT_NEW_DATA {hook, hookArguments, data}, data being a
 * GraphqlResponseWrapper {loading, data, error}. BigBlueButton
 * (plugins-engine/data-consumption/manager.tsx and the hook managers) counts
 * the subscriptions per hook (and per query for custom subscriptions),
 * sends the data on every subscription and whenever it changes. Here the
 * data comes from the enter answer and the stand-in's user list. Users
 * basic info: BBB's domain/users/users-basic-info/hook-manager.tsx and utils.ts.
 *
 * useUiData (ui-data-hooks/hooks.ts) dispatches
 * UI_DATA_LISTENER_SUBSCRIBED-<name> and listens for a CustomEvent <name>.
 */
import { record, show } from './record.js';

const SUBSCRIBED = 'PLUGIN_SUBSCRIBED_TO_BBB_CORE';
const UNSUBSCRIBED = 'PLUGIN_UNSUBSCRIBED_FROM_BBB_CORE';
const NEW_DATA = 'BBB_CORE_SENT_NEW_DATA';

export const HOOKS = {
  CURRENT_PRESENTATION: 'Hooks::UseCurrentPresentation',
  LOADED_USER_LIST: 'Hooks::UseLoadedUserList',
  CURRENT_USER: 'Hooks::UseCurrentUser',
  USERS_BASIC_INFO: 'Hooks::UseUsersBasicInfo',
  LOADED_CHAT_MESSAGES: 'Hooks::UseLoadedChatMessages',
  MEETING: 'Hooks::UseMeeting',
  TALKING_INDICATOR: 'Hooks::UseTalkingIndicator',
  CUSTOM_SUBSCRIPTION: 'Hooks::CustomSubscription',
};

// The ui data the stand-in knows, by name (ui-data-hooks/*/enums.ts).
const UI_DATA = {
  CURRENT_LOCALE: () => ({ locale: 'en', fallbackLocale: 'en' }),
  USER_LIST_IS_OPEN: () => ({ value: true }),
  CURRENT_VOLUME_VALUE: () => ({ value: 1 }),
  IS_VOLUME_MUTED: () => ({ value: false }),
  CHAT_INPUT_USER_TYPED: () => ({ text: '' }),
  CHAT_INPUT_FOCUSED: () => ({ value: false }),
};

export class DataHooks {
  constructor(meeting) {
    this.meeting = meeting; // { enter, users(): [] }
    this.counts = new Map(); // key → { hook, hookArguments, count }
  }

  start() {
    window.addEventListener(SUBSCRIBED, (e) => this.subscribed(e.detail || {}, 1));
    window.addEventListener(UNSUBSCRIBED, (e) => this.subscribed(e.detail || {}, -1));
    for (const [name, value] of Object.entries(UI_DATA)) {
      window.addEventListener(`UI_DATA_LISTENER_SUBSCRIBED-${name}`, () => {
        record('ui-data', name);
        window.dispatchEvent(new CustomEvent(name, { detail: value() }));
      });
    }
  }

  subscribed(detail, delta) {
    const key = hookKey(detail);
    const entry = this.counts.get(key) || { hook: detail.hook, hookArguments: detail.hookArguments, count: 0 };
    entry.count = Math.max(0, entry.count + delta);
    this.counts.set(key, entry);
    record('hook', delta > 0 ? 'subscribed' : 'unsubscribed', { hook: detail.hook, query: queryOf(detail) });
    // BigBlueButton answers from a React effect: after the subscriber's own listener is in place.
    if (delta > 0) setTimeout(() => this.send(entry), 0);
  }

  // Sends every subscribed hook its data again (the users changed).
  resend() {
    for (const entry of this.counts.values()) if (entry.count > 0) this.send(entry);
  }

  send(entry) {
    const data = this.answer(entry.hook, entry.hookArguments);
    if (data === undefined) return;
    window.dispatchEvent(new CustomEvent(NEW_DATA, {
      detail: { hook: entry.hook, hookArguments: entry.hookArguments, data },
    }));
  }

  // The GraphqlResponseWrapper for one hook.
  answer(hook, args) {
    const { enter } = this.meeting;
    const users = this.meeting.users();
    const ok = (data) => ({ loading: false, data });
    switch (hook) {
      case HOOKS.CURRENT_USER: {
        const me = users.find((u) => u.userId === enter.internalUserID) || {};
        return ok({
          userId: enter.internalUserID,
          extId: enter.externUserID,
          name: enter.fullname,
          role: enter.role,
          presenter: Boolean(me.presenter),
          cameras: [],
        });
      }
      case HOOKS.USERS_BASIC_INFO: // SDK 0.0.8x+ and 0.1.x; before, a custom subscription (below)
        return ok({
          user: users.map((u) => ({
            userId: u.userId,
            extId: u.extId || u.userId,
            name: u.name,
            role: u.role,
            avatar: '',
            color: '#7b1fa2',
            isModerator: u.role === 'MODERATOR',
            presenter: Boolean(u.presenter),
          })),
        });
      case HOOKS.LOADED_USER_LIST:
        return ok(users.map((u) => ({ userId: u.userId, name: u.name, role: u.role, presenter: Boolean(u.presenter) })));
      case HOOKS.MEETING:
        return ok({ name: enter.confname, meetingId: enter.meetingID });
      case HOOKS.TALKING_INDICATOR:
        return ok([]);
      case HOOKS.LOADED_CHAT_MESSAGES:
        return ok([]);
      case HOOKS.CURRENT_PRESENTATION:
        return ok({ currentPage: null });
      case HOOKS.CUSTOM_SUBSCRIPTION:
        return this.custom(args || {}, users);
      default:
        return undefined; // data channels and DOM hooks: not imitated
    }
  }

  // Custom subscriptions are GraphQL; the stand-in answers the one over the
  // user table (useUsersBasicInfo's) with the fields it asks for.
  custom(args, users) {
    const query = String(args.query || '');
    const m = query.match(/\buser\s*(?:\([^)]*\))?\s*\{([^{}]*)\}/);
    if (!m) {
      show('warn', `The stand-in does not answer this custom subscription: ${query.replace(/\s+/g, ' ').trim()}`);
      return { loading: false, error: { message: 'Not answered by the BBB-client stand-in.' } };
    }
    const fields = m[1].split(/[\s,]+/).filter(Boolean);
    const rows = users.map((u) => Object.fromEntries(fields.map((f) => [f, u[f] === undefined ? null : u[f]])));
    return { loading: false, data: { user: rows } };
  }
}

function queryOf(detail) {
  return detail.hookArguments && detail.hookArguments.query ? String(detail.hookArguments.query).replace(/\s+/g, ' ').trim() : undefined;
}

function hookKey(detail) {
  const args = detail.hookArguments || {};
  return `${detail.hook}|${args.query || ''}|${JSON.stringify(args.variables || null)}`;
}
