// Echo plugin frontend: a textbox that sends what you type and a log of what comes back.
// Portico loads this module and calls mount(container, api); index.html does the same standalone.
//
// It shows what every plugin frontend should do with its WebSocket (docs/plugin-contract.md §4):
// read the token again for every connection (the console renews it), and reconnect by itself
// with a jittered, growing delay after a close that a retry can fix, so that thousands of
// browsers reconnecting after a rollout do not all knock at the same moment.

/** The key the console (and CloudCLI plugin frontends) keep the user's token under. */
const TOKEN_KEY = 'auth-token';
/** Close codes after which reconnecting helps: drain, drop, restart, token renewed, plugin back. */
const RETRY_CODES = new Set([1001, 1006, 1012, 1013, 4401, 4503, 4504]);
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;

function defaultWsUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/plugin-ws/echo`;
}

/** The current token: the console's, read anew each time; else one given to mount. */
function currentToken(api) {
  try {
    const stored = localStorage.getItem(TOKEN_KEY);
    if (stored) return stored;
  } catch {
    // Storage blocked: the portico_token cookie may still authenticate.
  }
  return api.token ?? null;
}

// A browser can't set an Authorization header on a WebSocket, so a token travels as a
// subprotocol; without one, the portico_token cookie authenticates the connection.
function protocolsFor(token) {
  if (!token) return [];
  const b64url = btoa(token).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return ['portico', `base64url.bearer.authorization.portico.${b64url}`];
}

/** Delay before reconnect attempt `n` (0-based): doubling, capped, drawn from its upper half. */
export function reconnectDelay(n, random = Math.random) {
  const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.min(n, 16));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export function mount(container, api = {}) {
  container.innerHTML = `
    <form><input name="msg" placeholder="Say something" autocomplete="off" /> <button>Send</button></form>
    <pre style="max-height: 20em; overflow: auto"></pre>`;
  const form = container.querySelector('form');
  const log = container.querySelector('pre');
  const write = (line) => {
    log.textContent += `${line}\n`;
    log.scrollTop = log.scrollHeight;
  };

  let ws;
  let attempt = 0;
  let retryTimer;
  let stopped = false;
  const connect = () => {
    retryTimer = undefined;
    ws = new WebSocket(api.wsUrl ?? defaultWsUrl(), protocolsFor(currentToken(api)));
    ws.onopen = () => write('connected');
    ws.onmessage = (event) => {
      attempt = 0; // the plugin answered: the next trouble starts from a short delay again
      write(`< ${event.data}`);
    };
    ws.onclose = (event) => {
      write(`closed (${event.code}${event.reason ? `: ${event.reason}` : ''})`);
      if (stopped || !RETRY_CODES.has(event.code)) return;
      const delay = reconnectDelay(attempt++);
      write(`reconnecting in ${(delay / 1000).toFixed(1)} s`);
      retryTimer = setTimeout(connect, delay);
    };
  };
  connect();

  form.onsubmit = (event) => {
    event.preventDefault();
    const text = form.msg.value;
    if (!text || ws.readyState !== WebSocket.OPEN) return;
    ws.send(text);
    write(`> ${text}`);
    form.msg.value = '';
  };

  return () => {
    // unmount
    stopped = true;
    clearTimeout(retryTimer);
    ws.close(1000, 'unmounted');
  };
}
