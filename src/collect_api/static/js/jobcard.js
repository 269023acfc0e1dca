// One job, live: what it is, its state, its progress, what became of its writes, and the
// controls it allows now.
//
// A card is built once and then updated in place: progress events (several a second) change
// only texts and the bar, never the buttons, so a click or the keyboard focus is never lost
// to an update. The buttons are shown or hidden only when the state changes.

import { api } from "./api.js";
import { confirmAction } from "./dialog.js";
import { h, setText, uid } from "./dom.js";
import { bytes, count, duration, percent, plural, seconds } from "./format.js";
import { TERMINAL, onJob, putJob } from "./store.js";

const STATE_LABELS = {
  queued: "Queued",
  running: "Running",
  pausing: "Pausing",
  paused: "Paused",
  terminating: "Terminating",
  completed: "Completed",
  failed: "Failed",
  terminated: "Terminated",
};

const SUCCESSOR = { pause: "resume", resume: "pause" };

const ACTIONS = {
  pause: { label: "Pause", allowed: new Set(["queued", "running"]) },
  resume: { label: "Resume", allowed: new Set(["paused"]) },
  terminate: { label: "Terminate…", allowed: new Set(["queued", "running", "pausing", "paused"]) },
};

export function describeJob(job) {
  const p = job.params || {};
  if (job.kind === "import") return { title: `Import into ${p.dataset}`, target: p.dataset };
  if (job.kind === "export") return { title: `Export of ${p.dataset}`, target: p.dataset };
  return { title: `Teams from ${p.filename || "a CSV"}`, target: p.filename || "" };
}

export function jobSummary(job) {
  const p = job.params || {};
  if (job.kind === "import") {
    const policy = p.on_error === "skip" ? "skips bad records" : "stops at a bad record";
    return `${p.filename || "upload"} · ${p.mode} · ${policy}`;
  }
  if (job.kind === "export") {
    const columns = p.columns ? plural(p.columns.length, "column") : "all columns";
    const filters = (p.filters || []).length ? plural(p.filters.length, "filter") : "no filter";
    return `${columns} · ${filters}${p.gzip ? " · gzip" : ""}`;
  }
  return `${p.on_error === "skip" ? "skips bad records" : "stops at a bad record"}`;
}

function rolledBack(job) {
  const p = job.params || {};
  if (job.kind === "import") {
    return `Rolled back: nothing was kept, dataset ${p.dataset} is as it was before.`;
  }
  if (job.kind === "export") return "Rolled back: nothing was kept, no file was left.";
  return "Rolled back: nothing was kept, no team or member was added.";
}

function terminationWarning(job) {
  const p = job.params || {};
  if (job.kind === "import") {
    return `It stops, and its writes are rolled back: nothing it imported is kept, and dataset ${p.dataset} stays as it was before.`;
  }
  if (job.kind === "export") return "It stops, and the file it was writing is deleted.";
  return "It stops, and its writes are rolled back: no team or member it added is kept.";
}

// What became of the job, in words; for a running job, nothing (its numbers say it).
export function outcome(job) {
  const r = job.result || {};
  switch (job.state) {
    case "queued":
      return "Waiting for a run slot.";
    case "pausing":
      return "Pausing at the end of the chunk in flight…";
    case "paused":
      return "Paused: it writes nothing until it is resumed, and what it wrote is not visible yet.";
    case "terminating":
      return "Terminating: its writes are being rolled back…";
    case "terminated":
      return `Terminated. ${rolledBack(job)}`;
    case "failed":
      return `Failed: ${job.error?.message || "an error"}. ${rolledBack(job)}`;
    case "completed":
      if (job.kind === "import") {
        const rejected = r.rows_rejected
          ? ` ${plural(r.rows_rejected, "rejected record was", "rejected records were")} set aside.`
          : "";
        return `Imported ${plural(r.rows_imported, "record")} into ${r.dataset}, which now has ${plural(r.dataset_rows, "row")}.${rejected}`;
      }
      if (job.kind === "export") {
        if (r.expired) return "Exported; the file has since been deleted (result TTL).";
        return `Exported ${plural(r.rows, "row")}, ${bytes(r.bytes)}.`;
      }
      return (
        `Created ${plural(r.teams_created, "team")}, added ${plural(r.members_added, "member")}` +
        (r.members_already_present ? ` (${count(r.members_already_present)} already there)` : "") +
        "." +
        (r.rows_rejected
          ? ` ${plural(r.rows_rejected, "rejected record was", "rejected records were")} set aside.`
          : "")
      );
    default:
      return "";
  }
}

function numbers(job) {
  const p = job.progress || {};
  const unit = p.unit || "records";
  const done = `${count(p.done)} ${p.done === 1 ? unit.replace(/s$/, "") : unit}`;
  const parts = [done, percent(p.percent)];
  // Rate and ETA belong to a job that runs, whatever the document says otherwise.
  if (job.state === "running") {
    if (p.rate_per_s) parts.push(`${count(Math.round(p.rate_per_s))} ${unit}/s`);
    if (p.eta_s !== null && p.eta_s !== undefined) parts.push(`about ${duration(p.eta_s)} left`);
  } else if (job.state === "terminated" || job.state === "failed") {
    return `Stopped at ${percent(p.percent)}, after ${done}`;
  } else if (job.state === "paused") {
    parts.push("so far");
  }
  return parts.join(" · ");
}

const MOVING = new Set(["running", "pausing", "terminating"]);

function elapsed(job) {
  const start = job.started_at;
  if (!start) return job.state === "queued" ? "" : "never ran";
  if (job.finished_at) return `took ${duration(seconds(start, job.finished_at))}`;
  const end = MOVING.has(job.state) ? new Date().toISOString() : job.updated_at;
  return `${duration(seconds(start, end))} elapsed`;
}

// Every card on the page, updated from the store; a card that left the page is dropped.
const cards = new Set();

onJob((job) => {
  for (const card of cards) {
    if (!card.el.isConnected && card.placed) cards.delete(card);
    else if (card.job.id === job.id) card.update(job);
  }
});

setInterval(() => {
  for (const card of cards) {
    if (MOVING.has(card.job.state)) setText(card.elapsed, elapsed(card.job));
  }
}, 1000);

export class JobCard {
  constructor(job, { link = true, level = 3 } = {}) {
    const { title } = describeJob(job);
    const titleId = uid("job-title");
    this.job = job;
    this.placed = false;
    this.pending = new Set();
    this.heading = h(
      `h${level}`,
      { class: "job-title", id: titleId },
      link ? h("a", { href: `#/jobs/${job.id}` }, title) : title,
    );
    this.badge = h("span", { class: "badge" });
    this.summary = h("p", { class: "job-summary" }, jobSummary(job));
    this.fill = h("span", { class: "fill" });
    this.bar = h(
      "div",
      {
        class: "bar",
        role: "progressbar",
        "aria-valuemin": 0,
        "aria-valuemax": 100,
        "aria-label": `Progress of the ${job.kind} job`,
      },
      this.fill,
    );
    this.numbers = h("span", { class: "numbers" });
    this.elapsed = h("span", { class: "elapsed" });
    this.outcome = h("p", { class: "outcome" });
    this.note = h("p", { class: "note", role: "alert", hidden: true });
    this.buttons = {};
    for (const [action, { label }] of Object.entries(ACTIONS)) {
      this.buttons[action] = h(
        "button",
        {
          type: "button",
          class: action === "terminate" ? "danger" : "secondary",
          dataset: { action },
          "aria-label": `${label.replace("…", "")} ${title.toLowerCase()}`,
          hidden: true,
          onclick: () => this.act(action),
        },
        label,
      );
    }
    this.download = h("a", { class: "button", hidden: true }, "Download");
    this.links = h(
      "span",
      { class: "links" },
      this.download,
      link && h("a", { href: `#/jobs/${job.id}`, "aria-label": `Details of ${title.toLowerCase()}` }, "Details"),
    );
    this.actions = h("div", { class: "actions" }, Object.values(this.buttons), this.links);
    this.el = h(
      "article",
      { class: "job", tabindex: -1, dataset: { jobId: job.id, kind: job.kind }, "aria-labelledby": titleId },
      h("div", { class: "job-head" }, this.heading, this.badge),
      this.summary,
      this.bar,
      h("p", { class: "job-numbers" }, this.numbers, this.elapsed),
      h("div", { class: "job-foot" }, this.outcome, this.actions),
      this.note,
    );
    this.state = null;
    this.update(job);
    cards.add(this);
    queueMicrotask(() => {
      this.placed = true;
    });
  }

  update(job) {
    this.job = job;
    const p = job.progress || {};
    const value = Math.max(0, Math.min(100, p.percent || 0));
    this.fill.style.width = `${value}%`;
    this.bar.setAttribute("aria-valuenow", String(value));
    setText(this.numbers, numbers(job));
    setText(this.elapsed, elapsed(job));
    setText(this.outcome, outcome(job));
    if (job.state !== this.state) this.changeState(job);
  }

  changeState(job) {
    const active = document.activeElement;
    const focusHere = this.actions.contains(active) || active === this.el;
    this.state = job.state;
    this.el.dataset.state = job.state;
    setText(this.badge, STATE_LABELS[job.state] || job.state);
    this.badge.className = `badge badge-${job.state}`;
    for (const [action, { allowed }] of Object.entries(ACTIONS)) {
      this.buttons[action].hidden = !allowed.has(job.state);
    }
    const url = job.kind === "export" && job.state === "completed" && job.result?.download_url;
    this.download.hidden = !url;
    if (url) {
      this.download.href = url;
      this.download.setAttribute("download", job.result.filename || "");
    }
    if (TERMINAL.has(job.state)) this.el.classList.add("ended");
    // Keep the keyboard on the job: on the button that takes the place of the one pressed
    // (Resume for Pause, and back), or on the card while there is none (while pausing).
    if (focusHere) {
      if (active.dataset.action && active.hidden) this.focusFrom = active.dataset.action;
      const successor = this.buttons[SUCCESSOR[this.focusFrom]];
      if (successor && !successor.hidden) {
        successor.focus();
        this.focusFrom = null;
      } else if (active.hidden) {
        this.el.focus();
      }
    }
  }

  async act(action) {
    // The same request twice is one too many; another (terminate while a resume is on its
    // way) is the user's call.
    if (this.pending.has(action)) return;
    const job = this.job;
    if (action === "terminate") {
      const { title } = describeJob(job);
      const confirmed = await confirmAction({
        title: `Terminate ${title.toLowerCase()}?`,
        message: `${terminationWarning(job)} This cannot be undone.`,
        confirm: "Terminate",
        cancel: job.state === "paused" ? "Keep it paused" : "Keep it running",
      });
      if (!confirmed) return;
    }
    const button = this.buttons[action];
    this.pending.add(action);
    button.setAttribute("aria-disabled", "true");
    this.note.hidden = true;
    try {
      putJob(await api("POST", `/jobs/${job.id}/${action}`));
    } catch (error) {
      this.note.textContent = error.message;
      this.note.hidden = false;
    } finally {
      this.pending.delete(action);
      button.removeAttribute("aria-disabled");
    }
  }
}
