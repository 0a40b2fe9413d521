// Echo plugin frontend: a textbox that sends what you type and a log of what comes back.
// Portico loads this module and calls mount(container, api); index.html does the same standalone.

function defaultWsUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/plugin-ws/echo`;
}

// A browser can't set an Authorization header on a WebSocket, so a token travels as a
// subprotocol; without one, the portico_token cookie authenticates the connection.
function protocolsFor(token) {
  if (!token) return [];
  const b64url = btoa(token).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return ['portico', `base64url.bearer.authorization.portico.${b64url}`];
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

  const ws = new WebSocket(api.wsUrl ?? defaultWsUrl(), protocolsFor(api.token));
  ws.onopen = () => write('connected');
  ws.onmessage = (event) => write(`< ${event.data}`);
  ws.onclose = (event) => write(`closed (${event.code}${event.reason ? `: ${event.reason}` : ''})`);

  form.onsubmit = (event) => {
    event.preventDefault();
    const text = form.msg.value;
    if (!text || ws.readyState !== WebSocket.OPEN) return;
    ws.send(text);
    write(`> ${text}`);
    form.msg.value = '';
  };

  return () => ws.close(1000, 'unmounted'); // unmount
}
