// The agents' console: sign in with an agent token, see the queue live, take a session, watch its camera,
// part states, step and history, and act: write to the customer, point at a part, move to a step, end it.
// It talks to `/v1/agent` (JSON; docs/PROTOCOL.md, "The agent channel") and REST with the same token.
// The token is kept in sessionStorage only: it dies with the tab and never goes into a URL.

const TOKEN_KEY = "fixlens.agentToken";
const RECONNECT_S = 3;

const byId = (id) => document.getElementById(id);
const seen = { state: "starting", channel: "closed", agent: null, queue: [], session: null, control: false, frames: 0,
  last: null, acted: [], errors: [] };
window.fixlensConsole = seen; // read-only diagnostics for the browser console and the tests

let token = sessionStorage.getItem(TOKEN_KEY);
let ws = null;
let product = null;

function api(method, path) {
  return fetch(path, { method, cache: "no-store", headers: { Authorization: `Bearer ${token}` } })
    .then(async (response) => {
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error((body.error && body.error.message) || `HTTP ${response.status}`);
      return body;
    });
}

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/agent`;
  const socket = new WebSocket(url);
  ws = socket;
  byId("conn").textContent = "connecting…";
  socket.onopen = () => {
    seen.channel = "open";
    socket.send(JSON.stringify({ t: "hello", token }));
  };
  socket.onmessage = (event) => {
    if (socket !== ws) return;
    const message = JSON.parse(event.data);
    const handle = HANDLERS[message.t];
    if (handle) handle(message);
  };
  socket.onclose = () => {
    seen.channel = "closed";
    if (socket !== ws) return;
    byId("conn").textContent = "disconnected, reconnecting…";
    seen.state = "reconnecting";
    if (token) setTimeout(connect, RECONNECT_S * 1000);
  };
}

const HANDLERS = {
  welcome(m) {
    seen.state = "ready";
    seen.agent = m.agent;
    byId("who").textContent = `${m.agent} (${m.role})`;
    byId("conn").textContent = "connected";
    byId("signin").hidden = true;
    byId("desk").hidden = false;
    byId("signout").hidden = false;
    if (seen.session) send({ t: "watch", session: seen.session });
  },
  queue(m) {
    seen.queue = m.escalations;
    renderQueue(m.escalations);
  },
  watching(m) {
    seen.session = m.session;
    seen.control = m.control;
    byId("session").hidden = false;
    byId("session-title").textContent = `Session ${m.session}`;
    const entry = seen.queue.find((e) => e.session === m.session);
    byId("session-sub").textContent = entry ? `${entry.customer} · ${entry.product || "unknown product"} · asked: ${entry.reason}` : "";
    if (seen.queue.length) renderQueue(seen.queue);
    renderControl();
    if (m.product) loadProduct(m.product);
  },
  left() {
    seen.session = null;
    byId("session").hidden = true;
    byId("log").replaceChildren();
    renderQueue(seen.queue);
  },
  state(m) {
    seen.last = m;
    renderState(m);
  },
  frame(m) {
    seen.frames += 1;
    byId("live").src = `data:image/jpeg;base64,${m.jpeg}`;
    byId("live-caption").textContent = `Live camera, ${m.width} × ${m.height} (frame ${m.seq})`;
  },
  acted(m) {
    seen.acted.push(m.kind);
    byId("act-error").textContent = "";
    logAction(m);
  },
  error(m) {
    seen.errors.push(m.code);
    if (m.fatal) {
      // A token that is expired or not an agent's: ask again rather than retry it forever.
      token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      ws = null;
      showSignIn(m.message);
      return;
    }
    byId("act-error").textContent = m.message;
  },
};

function partName(name) {
  const part = product && product.parts.find((p) => p.name === name);
  return part ? part.label.en || name : name;
}

function logAction(m) {
  const text = m.kind === "message" ? `“${m.text}”`
    : m.kind === "point" ? (m.part ? `Pointed at the ${partName(m.part)}` : "Stopped pointing")
      : m.kind === "goto" ? `Moved the session to ${m.step}` : `Ended the session: ${m.outcome}`;
  const item = document.createElement("li");
  const at = document.createElement("time");
  at.textContent = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  item.append(at, text);
  byId("log").append(item);
  item.scrollIntoView({ block: "nearest" });
}

function renderQueue(items) {
  const list = byId("queue");
  byId("queue-empty").hidden = items.length > 0;
  list.replaceChildren(...items.map((e) => {
    const li = document.createElement("li");
    li.dataset.status = e.status;
    li.dataset.session = e.session;
    const mine = e.session === seen.session;
    li.dataset.mine = String(mine);
    const line1 = document.createElement("span");
    line1.className = "line1";
    line1.textContent = `${e.product || "unknown product"} · ${e.step || "no step yet"}`;
    const line2 = document.createElement("span");
    line2.className = "line2";
    line2.textContent = `${e.scene || "no scene"} · ${e.reason} · ${e.customer}${e.connected ? "" : " · offline"}`;
    const wait = document.createElement("span");
    wait.className = "wait";
    wait.textContent = e.status === "taken" ? `taken by ${e.agent}` : `waiting ${Math.round(e.waiting_s)} s`;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "take primary";
    button.textContent = mine ? "Watching" : e.status === "open" ? "Take" : "Watch";
    button.disabled = mine;
    button.addEventListener("click", () => take(e));
    li.append(line1, line2, wait, button);
    return li;
  }));
}

async function take(escalation) {
  try {
    if (escalation.status === "open") await api("POST", `/v1/escalations/${escalation.id}/take`);
    send({ t: "watch", session: escalation.session });
  } catch (err) {
    byId("act-error").textContent = err.message;
  }
}

async function loadProduct(productId) {
  if (product && product.id === productId) return;
  try {
    product = await api("GET", `/v1/products/${encodeURIComponent(productId)}`);
    byId("point-part").replaceChildren(...product.parts.map((p) => new Option(p.label.en || p.name, p.name)));
  } catch (err) {
    byId("act-error").textContent = err.message;
  }
}

function renderControl() {
  const badge = byId("control");
  badge.dataset.control = String(seen.control);
  badge.textContent = seen.control ? "you have control" : "watching";
  byId("take-control").hidden = seen.control;
  for (const el of document.querySelectorAll(".actions button, .actions input, .actions select")) {
    el.disabled = !seen.control;
  }
}

function renderState(m) {
  byId("step").textContent = m.step ? m.step : m.connected ? "no scene yet" : "customer offline";
  byId("history").replaceChildren(...m.history.map((s) => Object.assign(document.createElement("li"),
    { textContent: s })));
  const steps = byId("goto-step");
  if (steps.options.length !== m.steps.length) steps.replaceChildren(...m.steps.map((s) => new Option(s, s)));
  const mine = m.agents.find((a) => a.control);
  seen.control = Boolean(mine && mine.agent === seen.agent);
  renderControl();
  const obs = m.observation;
  if (obs && obs.product) loadProduct(obs.product);
  const rows = obs ? Object.entries(obs.parts) : [];
  byId("parts").replaceChildren(...rows.map(([name, p]) => {
    const tr = document.createElement("tr");
    tr.dataset.part = name;
    tr.dataset.visible = String(p.visible);
    for (const [text, cls] of [[name, ""], [p.state ?? "—", ""], [p.conf.toFixed(2), "conf"]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    return tr;
  }));
}

function showSignIn(why) {
  byId("desk").hidden = true;
  byId("signout").hidden = true;
  byId("who").textContent = "";
  byId("signin").hidden = false;
  byId("signin-error").textContent = why || "";
  seen.state = "signed_out";
}

/** Forget the token, leave the watched session, close the channel (it must not reconnect) and ask again. */
function signOut() {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  const socket = ws;
  ws = null; // before closing: the old socket's onclose then neither reconnects nor says "reconnecting"
  if (socket) {
    if (socket.readyState === WebSocket.OPEN && seen.session) socket.send(JSON.stringify({ t: "leave" }));
    socket.close(1000, "signed out");
  }
  Object.assign(seen, { agent: null, queue: [], session: null, control: false, frames: 0, last: null });
  product = null;
  byId("session").hidden = true;
  byId("log").replaceChildren();
  byId("queue").replaceChildren();
  byId("live").removeAttribute("src");
  byId("conn").textContent = "signed out";
  showSignIn();
}

function wire() {
  byId("signout").addEventListener("click", signOut);
  byId("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    token = byId("token").value.trim();
    byId("token").value = "";
    sessionStorage.setItem(TOKEN_KEY, token);
    connect();
  });
  byId("say").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = byId("say-text").value.trim();
    if (!text) return;
    send({ t: "act", kind: "message", text });
    byId("say-text").value = "";
  });
  byId("point").addEventListener("click", () => send({ t: "act", kind: "point", part: byId("point-part").value }));
  byId("unpoint").addEventListener("click", () => send({ t: "act", kind: "point", part: null }));
  byId("goto").addEventListener("click", () => send({ t: "act", kind: "goto", step: byId("goto-step").value }));
  byId("end").addEventListener("click", () => send({ t: "act", kind: "end", outcome: byId("end-outcome").value }));
  byId("take-control").addEventListener("click", () => send({ t: "control" }));
  byId("leave").addEventListener("click", () => send({ t: "leave" }));
}

wire();
if (token) connect();
else showSignIn();
