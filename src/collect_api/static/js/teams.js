// Teams (#/teams): import them from a CSV, list and search them; one team (#/teams/<id>).

import { api } from "./api.js";
import { field, h, setText, showError } from "./dom.js";
import { count } from "./format.js";
import { FormErrors, fileField, messageBox, moreOptions, onErrorField, startedJobs, submitUpload, uploadProgress } from "./forms.js";
import { onJob } from "./store.js";

const PAGE = 25;

export function teamsView(main, query) {
  const file = fileField({
    id: "teams-file",
    label: "Teams CSV file",
    hint: "Columns team, member_email, role (lead or member) and optionally member_name, in any order. Teams and members already there are left as they are.",
  });
  const onError = onErrorField();
  const options = moreOptions("teams");
  const submit = h("button", { type: "submit", class: "primary", id: "teams-submit" }, "Upload and create teams");
  const message = messageBox("teams-message");
  const progress = uploadProgress();
  const started = startedJobs("Started here");
  const errors = new FormErrors({ file, on_error: onError, ...options.fields }, message);
  const form = h(
    "form",
    { id: "teams-form", class: "panel form", novalidate: true, "aria-labelledby": "teams-import-title" },
    h("h2", { id: "teams-import-title" }, "Import teams"),
    file.wrap,
    onError.wrap,
    options.wrap,
    h("div", { class: "form-actions" }, submit, progress.wrap),
    message,
  );

  const search = field({
    label: "Search teams",
    hint: "Part of a team's name, in any case.",
    control: h("input", { type: "search", id: "teams-search", name: "q", autocomplete: "off", value: query.get("q") || "" }),
  });
  const tbody = h("tbody", { id: "teams" });
  const table = h(
    "table",
    { class: "stack" },
    h("caption", { class: "sr-only" }, "Teams"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Team"), h("th", { scope: "col", class: "num" }, "Members"))),
    tbody,
  );
  const more = h("button", { type: "button", class: "secondary", id: "more-teams", hidden: true }, "Load more teams");
  const status = h("p", { class: "list-status", role: "status" });
  const listSection = h(
    "section",
    { class: "panel", "aria-labelledby": "teams-list-title" },
    h("h2", { id: "teams-list-title" }, "Teams"),
    h("form", { role: "search", class: "search", onsubmit: (e) => e.preventDefault() }, search.wrap),
    h("div", { class: "table-wrap" }, table),
    h("div", { class: "more" }, more, status),
  );

  main.append(
    h(
      "div",
      { class: "view-head" },
      h("h1", {}, "Teams"),
      h("p", { class: "lead" }, "Create teams and their members from a CSV; the teams appear once the job completes."),
    ),
    h("div", { class: "two-columns" }, h("div", {}, form, started.section), listSection),
  );

  let next = null;
  let generation = 0;
  const load = async (reset) => {
    const mine = reset ? ++generation : generation;
    const params = new URLSearchParams({ limit: String(PAGE) });
    const q = search.control.value.trim();
    if (q) params.set("q", q);
    if (!reset && next) params.set("after", next);
    setText(status, "Loading…");
    try {
      const page = await api("GET", `/teams?${params}`);
      if (mine !== generation) return; // a newer search answered first
      const rows = page.items.map((team) =>
        h(
          "tr",
          {},
          h("td", { "data-label": "Team" }, h("a", { href: `#/teams/${team.id}` }, team.name)),
          h("td", { class: "num", "data-label": "Members" }, count(team.member_count)),
        ),
      );
      if (reset) tbody.replaceChildren(...rows);
      else tbody.append(...rows);
      next = page.next;
      more.hidden = next === null;
      const shown = tbody.children.length;
      setText(status, shown ? "" : q ? `No team's name contains “${q}”.` : "No teams yet: import a teams CSV.");
    } catch (error) {
      setText(status, `The teams could not be read: ${error.message}`);
    }
  };
  let debounce = null;
  search.control.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => load(true), 200);
  });
  more.addEventListener("click", () => load(false));
  load(true);

  const unsubscribe = onJob((job, known) => {
    if (job.kind === "teams" && job.state === "completed" && known?.state !== "completed") load(true);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.getAttribute("aria-disabled")) return;
    errors.clear();
    if (!file.control.files.length) {
      showError(file, "Choose the teams CSV file to import.");
      file.control.focus();
      return;
    }
    const job = await submitUpload({ form, path: "/teams/imports", errors, progress, submit });
    if (job) {
      errors.say("The teams job is queued; follow it below.");
      started.add(job);
      file.control.value = "";
    }
  });
  return () => {
    unsubscribe();
    clearTimeout(debounce);
  };
}

export function teamView(main, teamId) {
  const heading = h("h1", {}, "Team");
  const lead = h("p", { class: "lead" });
  const body = h("div", {}, h("p", { role: "status" }, "Loading…"));
  main.append(h("p", { class: "back" }, h("a", { href: "#/teams" }, "← All teams")), h("div", { class: "view-head" }, heading, lead), body);
  (async () => {
    let team;
    try {
      team = await api("GET", `/teams/${encodeURIComponent(teamId)}`);
    } catch (error) {
      setText(heading, "Team not found");
      body.replaceChildren(h("p", {}, error.status === 404 ? "There is no such team: it may belong to another API key, or the link is wrong." : error.message));
      return;
    }
    setText(heading, team.name);
    document.title = `${team.name} · Collect`;
    setText(lead, `${count(team.member_count)} ${team.member_count === 1 ? "member" : "members"}`);
    body.replaceChildren(
      h(
        "section",
        { class: "panel", "aria-labelledby": "members-title" },
        h("h2", { id: "members-title" }, "Members"),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "stack", id: "members" },
            h("thead", {}, h("tr", {}, ["E-mail", "Name", "Role"].map((t) => h("th", { scope: "col" }, t)))),
            h(
              "tbody",
              {},
              team.members.map((m) =>
                h(
                  "tr",
                  {},
                  h("td", { "data-label": "E-mail" }, m.email),
                  h("td", { "data-label": "Name" }, m.name || "—"),
                  h("td", { "data-label": "Role" }, h("span", { class: `role role-${m.role}` }, m.role)),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  })();
  return () => {};
}
