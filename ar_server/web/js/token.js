// Where the page's session token comes from, and what the tab remembers between reloads.
//
// Today the support link carries the token in its fragment (`/#token=...`): browsers never send a fragment in
// a request, so it reaches no server log. A later change replaces `obtainSessionToken` alone with a
// single-use link token exchanged over REST; nothing else reads the link.
//
// Everything is kept in sessionStorage: it survives a reload of this tab and dies with it, and it is never
// written into a URL.

const KEYS = { token: "fixlens.token", resume: "fixlens.resume", consent: "fixlens.consent" };

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

/**
 * The bearer token for `/v1/stream` and REST, or null without one. A token in the link replaces what the
 * tab remembered (a new link is a new session) and is then removed from the address bar and the history.
 */
export async function obtainSessionToken(location, history, memory) {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    if (memory.get("token") !== fromLink) memory.clear();
    memory.set("token", fromLink);
    history.replaceState(null, "", location.pathname + location.search);
    return fromLink;
  }
  return memory.get("token");
}
