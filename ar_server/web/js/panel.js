// The page's controls and messages: the step panel (text, progress, choices, Done/Back/Help), notices and
// view hints, the connection status line, the consent prompt and the closing card. Only the DOM; what a
// button does is the caller's `onAction(kind, choice)`.

import { format } from "./i18n.js";

// Notices that say how to hold the camera: shown above the step, one at a time, the newest replacing the last.
const VIEW_HINTS = new Set(["move_closer", "more_light", "hold_steady", "hand_covering", "part_covered",
  "turn_device", "point_camera", "no_product", "too_dark", "hold_still", "wrong_product"]);
// Notices that mean nothing to the customer (a click that crossed a step change).
const QUIET = new Set(["stale_step"]);
// Notices after which the customer may ask for a person (`event` `accept_help`).
const OFFERS_A_PERSON = new Set(["help_requested", "escalation_offer"]);
const NOTICE_S = 8;
const HINT_S = 5;

const byId = (id) => document.getElementById(id);

export class Panel {
  constructor(words, onAction) {
    this.words = words;
    this.onAction = onAction;
    this.step = null;
    this.el = {
      status: byId("status"), view: byId("view-status"), text: byId("step-text"), progress: byId("progress"),
      progressText: byId("progress-text"), choices: byId("choices"), done: byId("done"), back: byId("back"),
      help: byId("help"), notices: byId("notices"), hint: byId("hint"), consent: byId("consent"),
      consentTitle: byId("consent-title"), consentText: byId("consent-text"), consentYes: byId("consent-yes"),
      consentNo: byId("consent-no"), end: byId("end"), endTitle: byId("end-title"), endText: byId("end-text"),
      talk: byId("talk"), agent: byId("agent"), agentStatus: byId("agent-status"),
      agentMessages: byId("agent-messages"),
    };
    this.el.talk.textContent = words.talk;
    this.el.talk.addEventListener("click", () => {
      this.el.talk.hidden = true;
      this.onAction("accept_help", this.step ? this.step.step : null);
    });
    this.agentsOnCall = false; // `welcome.agents`: a person can be offered
    this.agentJoined = false;
    this.el.done.textContent = words.done;
    this.el.back.textContent = words.back;
    this.el.help.textContent = words.help;
    this.el.done.addEventListener("click", () => this.act("done"));
    this.el.back.addEventListener("click", () => this.act("back"));
    this.el.help.addEventListener("click", () => this.act("help"));
    this.el.text.textContent = words.waiting;
    this.hintTimer = null;
    this.setButtons(false);
  }

  act(kind, choice) {
    if (this.step) this.onAction(kind, this.step.step, choice);
  }

  setButtons(enabled) {
    for (const b of [this.el.done, this.el.back, this.el.help, this.el.talk, ...this.el.choices.children]) {
      b.disabled = !enabled;
    }
  }

  /** A `step` message: text, progress (1-based: step index of total), choices, and Done when it takes it. */
  showStep(step) {
    this.step = step;
    this.el.hint.hidden = true; // a hint about the previous step's part would mislead
    this.el.text.textContent = step.text;
    const progress = step.progress;
    this.el.progress.hidden = !progress;
    this.el.progressText.hidden = !progress;
    if (progress) {
      this.el.progress.max = progress.total;
      this.el.progress.value = progress.index;
      this.el.progressText.textContent = format(this.words.step, { n: progress.index, total: progress.total });
    }
    this.el.choices.replaceChildren(...(step.choices || []).map((choice) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "choice";
      button.textContent = choice.text;
      button.dataset.choice = choice.id;
      button.addEventListener("click", () => this.act("choose", choice.id));
      return button;
    }));
    this.el.done.hidden = !step.accepts_done;
    this.el.back.hidden = Boolean(progress && progress.index <= 1);
    this.setButtons(true);
  }

  showNotice(notice) {
    if (OFFERS_A_PERSON.has(notice.code) && this.agentsOnCall && !this.agentJoined) this.el.talk.hidden = false;
    if (notice.code === "agent_queued") this.setAgentStatus(notice.text);
    if (QUIET.has(notice.code) || !notice.text) return;
    if (VIEW_HINTS.has(notice.code)) {
      this.el.hint.textContent = notice.text;
      this.el.hint.dataset.code = notice.code;
      this.el.hint.hidden = false;
      clearTimeout(this.hintTimer);
      this.hintTimer = setTimeout(() => { this.el.hint.hidden = true; }, HINT_S * 1000);
      return;
    }
    const item = document.createElement("p");
    item.className = "notice";
    item.dataset.code = notice.code;
    item.textContent = notice.text;
    this.el.notices.prepend(item);
    while (this.el.notices.children.length > 3) this.el.notices.lastElementChild.remove();
    setTimeout(() => item.remove(), NOTICE_S * 1000);
  }

  /** An `agent` message: who joined or left, and what they wrote. */
  showAgent(message) {
    const name = message.agent;
    if (message.kind === "joined") {
      this.agentJoined = true;
      this.el.talk.hidden = true;
      this.setAgentStatus(format(this.words.agent_joined, { name }));
    } else if (message.kind === "left") {
      this.agentJoined = false;
      this.setAgentStatus(format(this.words.agent_left, { name }));
    } else if (message.kind === "message" && message.text) {
      const item = document.createElement("li");
      item.className = "agent-message";
      const who = document.createElement("strong");
      who.textContent = `${name}: `;
      item.append(who, message.text);
      this.el.agentMessages.append(item);
      while (this.el.agentMessages.children.length > 4) this.el.agentMessages.firstElementChild.remove();
      this.el.agent.hidden = false;
    } else if (message.kind === "point" && message.part) {
      this.setAgentStatus(format(this.words.agent_pointing, { name }));
    }
  }

  setAgentStatus(text) {
    this.el.agentStatus.textContent = text;
    this.el.agent.hidden = false;
  }

  /** Hide the view hint if it is the one with `code`. */
  clearHint(code) {
    if (!this.el.hint.hidden && this.el.hint.dataset.code === code) this.el.hint.hidden = true;
  }

  /** The status line: `kind` is connecting, connected, reconnecting, offline, closed or a problem. */
  setStatus(kind, text) {
    this.el.status.textContent = text;
    this.el.status.dataset.kind = kind;
    if (kind !== "connected") this.setButtons(false);
    else if (this.step) this.setButtons(true);
  }

  setProductInView(inView) {
    this.el.view.textContent = inView ? this.words.in_view : this.words.searching;
    this.el.view.dataset.inView = String(inView);
  }

  /** Ask whether frames may be stored; resolves true or false. */
  askConsent() {
    const { consent, consentTitle, consentText, consentYes, consentNo } = this.el;
    consentTitle.textContent = this.words.consent_title;
    consentText.textContent = this.words.consent_text;
    consentYes.textContent = this.words.consent_yes;
    consentNo.textContent = this.words.consent_no;
    return new Promise((resolve) => {
      const answer = (yes) => {
        consentYes.onclick = null;
        consentNo.onclick = null;
        consent.close();
        resolve(yes);
      };
      consentYes.onclick = () => answer(true);
      consentNo.onclick = () => answer(false);
      consent.oncancel = (e) => { e.preventDefault(); }; // an answer is needed; Escape does not dismiss it
      consent.showModal();
    });
  }

  /** The closing card: the outcome and the server's closing text, else the closing step's own text. */
  showEnd(outcome, text) {
    const title = outcome === "resolved" ? this.words.end_resolved
      : outcome === "escalated" ? this.words.end_escalated : this.words.end_other;
    this.el.endTitle.textContent = title;
    this.el.endText.textContent = text || (this.step && this.step.text) || "";
    this.el.end.dataset.outcome = outcome;
    this.el.end.hidden = false;
    this.setButtons(false);
  }

  /** A problem the page cannot get past by itself (no camera, a bad link). */
  showProblem(text) {
    this.setStatus("problem", text);
    this.el.text.textContent = text;
    this.setButtons(false);
  }
}
