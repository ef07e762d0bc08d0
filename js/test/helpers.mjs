// Waiting for conditions with deadlines: no test sleeps to synchronise.
import WS from "ws";

/** The WebSocket class: Node 22's global, else the ws package's (Node 20). */
export const WebSocket = globalThis.WebSocket ?? WS;

/** Resolves when cond() is true; rejects after ms with what it waited for. */
export async function until(cond, what, ms = 5000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The arguments of the next `ev` event of emitter, within ms. */
export function next(emitter, ev, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(ev, on);
      reject(new Error(`no ${ev} event within ${ms} ms`));
    }, ms);
    const on = (...a) => {
      clearTimeout(t);
      emitter.off(ev, on);
      resolve(a.length > 1 ? a : a[0]);
    };
    emitter.on(ev, on);
  });
}

/** Collects every `ev` event of emitter. */
export function record(emitter, ev) {
  const got = [];
  emitter.on(ev, (...a) => got.push(a.length > 1 ? a : a[0]));
  return got;
}
