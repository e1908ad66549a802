/*
 * BBB-client stand-in: the meeting's audio and BigBlueButton's speaker level.
 *
 * In BigBlueButton the participant hears the meeting through its audio
 * bridge; here a 440 Hz tone stands for it, through a gain that follows
 * SET_SPEAKER_LEVEL_COMMAND (the plugin SDK's
 * uiCommands.conference.setSpeakerLevel({level}), 0–1), so a test can read
 * window.standin.speakerLevel or even measure the tone. The tone plays only
 * while the participant has joined audio.
 */
import { record, show, standin } from './record.js';

const TONE_HZ = 440;
const TONE_GAIN = 0.2; // the tone at speaker level 1

let ctx = null;
let gain = null;
let meter = null;

export function attachMeter(el) {
  meter = el;
  render();
}

function render() {
  if (!meter) return;
  const pct = Math.round(standin.speakerLevel * 100);
  meter.dataset.level = String(standin.speakerLevel);
  meter.querySelector('[data-standin="speaker-level-value"]').textContent = `${pct} %`;
  meter.querySelector('[data-standin="speaker-level-bar"]').style.transform = `scaleX(${standin.speakerLevel})`;
  meter.hidden = !standin.audioJoined;
}

// The tone starts with the participant's "Join audio" (a gesture) or ?audio=1.
export function startTone() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return;
  if (!ctx) {
    ctx = new Ctx();
    const osc = ctx.createOscillator();
    osc.frequency.value = TONE_HZ;
    gain = ctx.createGain();
    gain.gain.value = TONE_GAIN * standin.speakerLevel;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
  }
  ctx.resume().catch(() => {});
  render();
}

export function stopTone() {
  if (ctx) ctx.suspend().catch(() => {});
  render();
}

export function listenForSpeakerLevel() {
  window.addEventListener('SET_SPEAKER_LEVEL_COMMAND', (e) => {
    const level = Number(e.detail && e.detail.level);
    record('command', 'SET_SPEAKER_LEVEL_COMMAND', { level });
    if (!(level >= 0 && level <= 1)) {
      show('error', `SET_SPEAKER_LEVEL_COMMAND with a level outside 0–1: ${e.detail && e.detail.level}`);
      return;
    }
    standin.speakerLevel = level;
    if (gain && ctx) gain.gain.setTargetAtTime(TONE_GAIN * level, ctx.currentTime, 0.01);
    show('info', `Speaker level set to ${Math.round(level * 100)} %`);
    render();
  });
}

export { render as renderMeter };
