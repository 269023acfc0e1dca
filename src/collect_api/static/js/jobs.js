// The jobs list (#/jobs, filterable, paged, live) and a job's own page (#/jobs/<id>).

import { api, fetchRaw } from "./api.js";
import { parseCsv } from "./csv.js";
import { h, setText } from "./dom.js";
import { bytes, count, plural, when } from "./format.js";
import { JobCard, describeJob } from "./jobcard.js";
import { TERMINAL, feedOpen, knownJobs, onJob, onResync, putJob } from "./store.js";

const PAGE = 25;
const STATES = ["queued", "running", "pausing", "paused", "terminating", "completed", "failed", "terminated"];
const KINDS = { import: "Imports", export: "Exports", teams: "Teams" };

function select(id, label, options, value) {
  const control = h(
    "select",
    { id, name: id },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
  );
  return { wrap: h("div", { class: "field inline" }, h("label", { for: id }, label), control), control };
}

// A list of job cards, newest first, that keeps itself current.
export class JobList {
  constructor({ matches = () => true, empty = "No jobs." } = {}) {
    this.matches = matches;
    this.shown = new Map();
    this.el = h("ol", { class: "job-list", id: "jobs" });
    this.empty = h("p", { class: "empty", hidden: true }, empty);
    this.oldest = null;
    this.complete = false;
    this.loaded = false;
    this.unsubscribe = onJob((job) => this.consider(job));
  }

  consider(job) {
    const item = this.shown.get(job.id);
    if (!this.matches(job)) {
      if (item) {
        item.li.remove();
        this.shown.delete(job.id);
        this.refreshEmpty();
      }
      return;
    }
    if (!item && this.loaded && (this.complete || this.oldest === null || job.id > this.oldest)) {
      this.place(job);
    }
  }

  place(job) {
    if (this.shown.has(job.id)) return;
    const card = new JobCard(job);
    const li = h("li", {}, card.el);
    const after = [...this.el.children].find((other) => other.dataset.id < job.id);
    li.dataset.id = job.id;
    this.el.insertBefore(li, after || null);
    this.shown.set(job.id, { li, card });
    this.refreshEmpty();
  }

  // Add the jobs of a page read from the service (kept in the store, which keeps the newer).
  addPage(items, next) {
    for (const item of items) {
      const job = putJob(item);
      if (this.matches(job)) this.place(job);
    }
    if (items.length) this.oldest = items[items.length - 1].id;
    this.complete = next === null;
    if (!this.loaded) {
      this.loaded = true;
      // Jobs the feed reported before the list was read.
      for (const job of knownJobs()) this.consider(job);
    }
    this.refreshEmpty();
  }

  refreshEmpty() {
    this.empty.hidden = !this.loaded || this.shown.size > 0;
  }

  destroy() {
    this.unsubscribe();
  }
}

export function jobsView(main, query) {
  const state = query.get("state") || "";
  const kind = query.get("kind") || "";
  const stateSelect = select(
    "filter-state",
    "State",
    [["", "Any state"], ...STATES.map((s) => [s, s[0].toUpperCase() + s.slice(1)])],
    state,
  );
  const kindSelect = select(
    "filter-kind",
    "Kind",
    [["", "Any kind"], ...Object.entries(KINDS)],
    kind,
  );
  const applyFilters = () => {
    const params = new URLSearchParams();
    if (stateSelect.control.value) params.set("state", stateSelect.control.value);
    if (kindSelect.control.value) params.set("kind", kindSelect.control.value);
    const suffix = params.toString();
    location.hash = suffix ? `#/jobs?${suffix}` : "#/jobs";
  };
  stateSelect.control.addEventListener("change", applyFilters);
  kindSelect.control.addEventListener("change", applyFilters);

  const list = new JobList({
    matches: (job) => (!state || job.state === state) && (!kind || job.kind === kind),
    empty:
      state || kind
        ? "No job matches these filters."
        : "No jobs yet. Import a CSV, export a dataset or import teams to start one.",
  });
  const more = h("button", { type: "button", class: "secondary", id: "more-jobs", hidden: true }, "Load more jobs");
  const status = h("p", { class: "list-status", role: "status" });

  main.append(
    h(
      "div",
      { class: "view-head" },
      h("h1", {}, "Jobs"),
      h("p", { class: "lead" }, "Every job, live. Pause, resume or terminate one while it runs."),
    ),
    h("form", { class: "filters", role: "search", "aria-label": "Filter jobs", onsubmit: (e) => e.preventDefault() }, stateSelect.wrap, kindSelect.wrap),
    list.el,
    list.empty,
    h("div", { class: "more" }, more, status),
  );

  let loading = false;
  const filter = () => {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (state) params.set("state", state);
    if (kind) params.set("kind", kind);
    return params;
  };
  const loadMore = async () => {
    if (loading || list.complete) return;
    loading = true;
    setText(status, "Loading…");
    try {
      const params = filter();
      if (list.oldest) params.set("after", list.oldest);
      const page = await api("GET", `/jobs?${params}`);
      list.addPage(page.items, page.next);
      more.hidden = list.complete;
      setText(status, "");
    } catch (error) {
      setText(status, `The jobs could not be read: ${error.message}`);
    } finally {
      loading = false;
    }
  };
  more.addEventListener("click", loadMore);
  // More load by themselves when the end of the list comes into view.
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && list.loaded) loadMore();
  });
  observer.observe(more);

  const stopResync = onResync(async () => {
    // New jobs started while the feed was away: read the first page again.
    try {
      const page = await api("GET", `/jobs?${filter()}`);
      for (const item of page.items) list.consider(putJob(item));
    } catch {
      // the next resync tries again
    }
  });

  feedOpen().then(loadMore);
  return () => {
    list.destroy();
    observer.disconnect();
    stopResync();
  };
}

// --- one job -------------------------------------------------------------------------------

const OPERATORS = { eq: "=", ne: "≠", lt: "<", le: "≤", gt: ">", ge: "≥", contains: "contains", in: "is one of" };
const DELIMITERS = { ",": "comma ( , )", ";": "semicolon ( ; )", "\t": "tab", "|": "bar ( | )", auto: "found in the file" };
const ON_ERROR = { abort: "abort: the first bad record fails the job", skip: "skip: bad records are set aside" };

function describeFilter(f) {
  const value = Array.isArray(f.value) ? f.value.map((v) => JSON.stringify(v)).join(", ") : JSON.stringify(f.value);
  return `${f.column} ${OPERATORS[f.op] || f.op} ${value}`;
}

function list(items) {
  return h("ul", { class: "plain" }, items.map((item) => h("li", {}, item)));
}

function paramRows(job) {
  const p = job.params || {};
  const rows = [];
  const add = (label, value) => {
    if (value !== undefined && value !== null && value !== "") rows.push([label, value]);
  };
  if (job.kind === "export") {
    add("Dataset", h("a", { href: `#/datasets/${encodeURIComponent(p.dataset)}` }, p.dataset));
    add("Columns", p.columns ? p.columns.join(", ") : "all, in the dataset's order");
    add("Filters", (p.filters || []).length ? list(p.filters.map(describeFilter)) : "none: every row");
    add("Compression", p.gzip ? "gzip" : "none");
    return rows;
  }
  if (job.kind === "import") {
    add("Dataset", h("a", { href: `#/datasets/${encodeURIComponent(p.dataset)}` }, p.dataset));
    add("Mode", p.mode);
  }
  add("File", p.filename);
  add("Size", p.bytes !== undefined ? bytes(p.bytes) : undefined);
  add("Bad records", ON_ERROR[p.on_error] || p.on_error);
  add("Most rejected records", p.max_errors !== undefined ? count(p.max_errors) : undefined);
  add("Encoding", p.encoding);
  add("Delimiter", DELIMITERS[p.delimiter] || p.delimiter);
  add("Columns", p.columns ? p.columns.join(", ") : undefined);
  const known = new Set(["dataset", "mode", "filename", "bytes", "on_error", "max_errors", "encoding", "delimiter", "columns"]);
  for (const [key, value] of Object.entries(p)) {
    if (!known.has(key)) add(key, typeof value === "string" ? value : JSON.stringify(value));
  }
  return rows;
}

function resultRows(job) {
  const r = job.result || {};
  const rows = [];
  if (job.kind === "import") {
    rows.push(["Records imported", count(r.rows_imported)]);
    rows.push(["Records rejected", count(r.rows_rejected)]);
    rows.push([
      "Dataset now",
      h("span", {}, h("a", { href: `#/datasets/${encodeURIComponent(r.dataset)}` }, r.dataset), `: ${plural(r.dataset_rows, "row")}`),
    ]);
  } else if (job.kind === "export") {
    rows.push(["Rows written", count(r.rows)]);
    rows.push(["Size", bytes(r.bytes)]);
    rows.push([
      "File",
      r.download_url ? h("a", { href: r.download_url, download: r.filename || "" }, r.filename || "Download") : "deleted after the result TTL",
    ]);
  } else {
    rows.push(["Teams created", count(r.teams_created)]);
    rows.push(["Members added", count(r.members_added)]);
    rows.push(["Members already there", count(r.members_already_present)]);
    rows.push(["Records rejected", count(r.rows_rejected)]);
    rows.push(["Teams", h("a", { href: "#/teams" }, "See the teams")]);
  }
  return rows;
}

function errorRows(job) {
  const e = job.error || {};
  return [
    ["What happened", e.message],
    ["Code", e.code],
    ["Line", e.line],
    ["Record", e.record],
    ["Column", e.column],
    ["Its writes", "rolled back: nothing was kept"],
  ].filter(([, v]) => v !== undefined && v !== null);
}

function definitions(rows) {
  return h("dl", { class: "facts" }, rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

function historyEntry(entry) {
  const system = entry.actor === "system";
  const who = system ? "Collect" : entry.actor;
  const asked = { submitted: "submitted the job", pause: "asked to pause", resume: "asked to resume", terminate: "asked to terminate" };
  const what = !system && asked[entry.reason] ? asked[entry.reason] : entry.reason || "";
  const move = entry.from_state ? `${entry.from_state} → ${entry.to_state}` : entry.to_state;
  return h(
    "li",
    { class: system ? "system" : "person" },
    h("time", { datetime: entry.at }, when(entry.at)),
    h("span", { class: "who" }, who),
    h("span", { class: "what" }, what),
    h("span", { class: "move" }, move),
  );
}

const REJECTED_SHOWN = 20;

// The first rejected records of a job, read from its CSV without downloading all of it.
async function firstRejections(jobId) {
  const response = await fetchRaw(`/jobs/${jobId}/errors`);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let done = false;
  let rows = [];
  while (!done) {
    const chunk = await reader.read();
    done = chunk.done;
    if (chunk.value) text += decoder.decode(chunk.value, { stream: true });
    rows = parseCsv(text, done);
    if (!done && rows.length > REJECTED_SHOWN + 1) {
      reader.cancel();
      break;
    }
  }
  return { rows: rows.slice(1, REJECTED_SHOWN + 1), all: done ? rows.length - 1 : null };
}

async function rejectedSection(job, section) {
  const { rows, all } = await firstRejections(job.id);
  const total = job.result?.rows_rejected ?? all;
  if (!rows.length) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const shown = rows.length < (total ?? Infinity) ? ` The first ${rows.length} are below.` : "";
  section.replaceChildren(
    h("h2", { id: "rejected-title" }, "Rejected records"),
    h(
      "p",
      { id: "rejected-count" },
      total === null ? `More than ${REJECTED_SHOWN} records were rejected.` : `${plural(total, "record was", "records were")} rejected and set aside.`,
      shown,
    ),
    h(
      "div",
      { class: "table-wrap", tabindex: 0, role: "region", "aria-labelledby": "rejected-title" },
      h(
        "table",
        { id: "rejected", class: "stack" },
        h("thead", {}, h("tr", {}, ["Line", "Record", "Column", "Reason", "As written"].map((t, i) => h("th", { scope: "col", class: i < 2 ? "num" : null }, t)))),
        h(
          "tbody",
          {},
          rows.map(([line, record, column, reason, raw]) =>
            h(
              "tr",
              {},
              h("td", { class: "num", "data-label": "Line" }, line),
              h("td", { class: "num", "data-label": "Record" }, record),
              h("td", { "data-label": "Column" }, column || "—"),
              h("td", { "data-label": "Reason" }, reason),
              h("td", { "data-label": "As written" }, h("code", { class: "raw" }, raw)),
            ),
          ),
        ),
      ),
    ),
    h("p", {}, h("a", { class: "button secondary", href: `/jobs/${job.id}/errors`, download: `${job.id}-errors.csv`, id: "rejected-download" }, "Download all rejected records (CSV)")),
  );
}

export function jobView(main, jobId) {
  const back = h("p", { class: "back" }, h("a", { href: "#/jobs" }, "← All jobs"));
  const heading = h("h1", {}, "Job");
  const message = h("p", { class: "message", role: "status" }, "Loading…");
  const sub = h("p", { class: "lead job-id" });
  main.append(back, h("div", { class: "view-head" }, heading, sub), message);

  let card = null;
  let lastState = null;
  const details = h("div", { class: "job-details" });
  const paramsSection = h("section", { class: "panel", "aria-labelledby": "params-title" });
  const timesSection = h("section", { class: "panel", "aria-labelledby": "times-title" });
  const resultSection = h("section", { class: "panel", "aria-labelledby": "result-title", hidden: true });
  const historySection = h("section", { class: "panel wide", "aria-labelledby": "history-title" });
  const rejected = h("section", { class: "panel wide", id: "rejected-records", "aria-labelledby": "rejected-title", hidden: true });
  const timeCells = {};

  const times = (job) => {
    const rows = [["Created", job.created_at], ["Started", job.started_at], ["Last change", job.updated_at], ["Finished", job.finished_at]];
    if (!timesSection.firstChild) {
      timesSection.append(
        h("h2", { id: "times-title" }, "Times"),
        h(
          "dl",
          { class: "facts" },
          rows.map(([term]) => {
            timeCells[term] = h("time");
            return [h("dt", {}, term), h("dd", {}, timeCells[term])];
          }),
        ),
      );
    }
    for (const [term, value] of rows) {
      setText(timeCells[term], value ? when(value) : "—");
      if (value) timeCells[term].setAttribute("datetime", value);
    }
  };

  const loadHistory = async () => {
    try {
      const page = await api("GET", `/jobs/${jobId}/history`);
      historySection.replaceChildren(
        h("h2", { id: "history-title" }, "History"),
        h("ol", { class: "timeline", id: "history" }, page.items.map(historyEntry)),
      );
    } catch (error) {
      historySection.replaceChildren(h("h2", { id: "history-title" }, "History"), h("p", { class: "error" }, error.message));
    }
  };

  const render = (job) => {
    times(job);
    if (job.state === lastState) return;
    lastState = job.state;
    paramsSection.replaceChildren(h("h2", { id: "params-title" }, "Parameters"), definitions(paramRows(job)));
    if (job.state === "completed" && job.result) {
      resultSection.hidden = false;
      resultSection.replaceChildren(h("h2", { id: "result-title" }, "Result"), definitions(resultRows(job)));
    } else if (job.state === "failed" && job.error) {
      resultSection.hidden = false;
      resultSection.replaceChildren(h("h2", { id: "result-title" }, "Error"), definitions(errorRows(job)));
    } else {
      resultSection.hidden = true;
    }
    loadHistory();
    if (job.kind !== "export" && TERMINAL.has(job.state)) {
      rejectedSection(job, rejected).catch(() => {
        rejected.hidden = true;
      });
    }
  };

  let unsubscribe = () => {};
  (async () => {
    let job;
    try {
      job = putJob(await api("GET", `/jobs/${encodeURIComponent(jobId)}`));
    } catch (error) {
      setText(heading, "Job not found");
      setText(message, error.status === 404 ? "There is no such job: it may belong to another API key, or the link is wrong." : error.message);
      return;
    }
    if (!main.isConnected) return;
    message.remove();
    const { title } = describeJob(job);
    setText(heading, title);
    document.title = `${title} · Collect`;
    setText(sub, `Job ${job.id}`);
    card = new JobCard(job, { link: false, level: 2 });
    card.heading.textContent = "Status";
    details.append(paramsSection, timesSection, resultSection, historySection, rejected);
    main.append(h("div", { class: "job-now" }, card.el), details);
    render(job);
    unsubscribe = onJob((changed) => {
      if (changed.id === jobId) render(changed);
    });
  })();
  return () => unsubscribe();
}
