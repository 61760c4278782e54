// Where the page's session token comes from, and what the tab remembers between reloads.
//
// A support link carries a short-lived, single-use link token in its fragment (`/#link=...`): browsers never
// send a fragment in a request, so it reaches no server log. The page removes it from the address bar and
// the history at once, then trades it once (`POST /v1/links/exchange`, the link token in the body) for the
// session's bearer token. That token never appears in a URL.
//
// Everything is kept in sessionStorage: it survives a reload of this tab and dies with it.

const KEYS = { token: "fixlens.token", resume: "fixlens.resume", consent: "fixlens.consent" };
export const EXCHANGE_PATH = "/v1/links/exchange";

export class TabMemory {
  constructor(storage) {
    this.storage = storage;
  }

  get(name) {
    try {
      return this.storage.getItem(KEYS[name]);
    } catch {
      return null; // storage disabled: the page still works, it just cannot resume after a reload
    }
  }

  set(name, value) {
    try {
      if (value === null || value === undefined) this.storage.removeItem(KEYS[name]);
      else this.storage.setItem(KEYS[name], value);
    } catch {
      // as above
    }
  }

  /** Forget the session (it ended, or a new link was opened in this tab). */
  clear() {
    for (const name of Object.keys(KEYS)) this.set(name, null);
  }
}

export class LinkError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/**
 * The bearer token for `/v1/stream` and REST, or null without one. A link in the address replaces what the
 * tab remembered (a new link is a new session). Throws LinkError when the link cannot be used (already
 * opened, expired, unknown): the server's message says which.
 */
export async function obtainSessionToken(location, history, memory, fetchImpl = fetch) {
  const link = new URLSearchParams(location.hash.slice(1)).get("link");
  if (!link) return memory.get("token");
  history.replaceState(null, "", location.pathname + location.search);
  const response = await fetchImpl(EXCHANGE_PATH, {
    method: "POST", cache: "no-store", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ link }),
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok || !body || typeof body.token !== "string") {
    const error = (body && body.error) || {};
    // A reload after the exchange finds the link used: the tab's own token still carries the session.
    if (error.code === "link_used" && memory.get("token")) return memory.get("token");
    throw new LinkError(error.code || `http_${response.status}`, error.message || `HTTP ${response.status}`);
  }
  memory.clear();
  memory.set("token", body.token);
  return body.token;
}
