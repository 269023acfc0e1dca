// Datasets (#/datasets): what has been imported and the jobs that made it; one dataset's
// rows, page by page, and its deletion (#/datasets/<name>).

import { api, listAll } from "./api.js";
import { confirmAction } from "./dialog.js";
import { h, setText } from "./dom.js";
import { count, plural, shortId, when } from "./format.js";
import { onJob } from "./store.js";

// The completed imports whose rows a dataset holds now: those since it was last created or
// replaced (a dataset deleted and created again starts over).
export function makers(imports, name) {
  const done = imports
    .filter((job) => job.params?.dataset === name && job.state === "completed")
    .sort((a, b) => (a.finished_at < b.finished_at ? -1 : 1));
  let start = 0;
  done.forEach((job, i) => {
    if (job.params.mode !== "append") start = i;
  });
  return done.slice(start).reverse();
}

function makerLink(job) {
  const rows = job.result?.rows_imported;
  return h(
    "a",
    { href: `#/jobs/${job.id}`, class: "maker", "aria-label": `Import job ${job.id}, ${job.params.mode}` },
    `${job.params.mode} · ${rows === undefined ? "" : plural(rows, "record")} · ${when(job.finished_at)}`,
  );
}

function makersCell(jobs) {
  if (!jobs.length) return "—";
  const shown = jobs.slice(0, 3);
  return h(
    "ul",
    { class: "plain makers" },
    shown.map((job) => h("li", {}, makerLink(job))),
    jobs.length > shown.length && h("li", {}, `and ${plural(jobs.length - shown.length, "more import")}`),
  );
}

export function datasetsView(main) {
  const tbody = h("tbody", { id: "datasets" });
  const status = h("p", { class: "list-status", role: "status" }, "Loading…");
  main.append(
    h(
      "div",
      { class: "view-head" },
      h("h1", {}, "Datasets"),
      h("p", { class: "lead" }, "What has been imported. A dataset appears when the first import into it completes."),
    ),
    h(
      "section",
      { class: "panel", "aria-label": "Datasets" },
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "stack" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col" }, "Dataset"),
              h("th", { scope: "col", class: "num" }, "Rows"),
              h("th", { scope: "col", class: "num" }, "Columns"),
              h("th", { scope: "col" }, "Updated"),
              h("th", { scope: "col" }, "Made by"),
            ),
          ),
          tbody,
        ),
      ),
      status,
    ),
  );

  const load = async () => {
    try {
      const [datasets, imports] = await Promise.all([listAll("/datasets"), listAll("/jobs?kind=import")]);
      tbody.replaceChildren(
        ...datasets.map((d) =>
          h(
            "tr",
            { dataset: { name: d.name } },
            h("td", { "data-label": "Dataset" }, h("a", { href: `#/datasets/${encodeURIComponent(d.name)}` }, d.name)),
            h("td", { class: "num", "data-label": "Rows" }, count(d.row_count)),
            h("td", { class: "num", "data-label": "Columns" }, count(d.columns.length)),
            h("td", { "data-label": "Updated" }, h("time", { datetime: d.updated_at }, when(d.updated_at))),
            h("td", { "data-label": "Made by" }, makersCell(makers(imports, d.name))),
          ),
        ),
      );
      setText(status, datasets.length ? "" : "No datasets yet: import a CSV to make one.");
    } catch (error) {
      setText(status, `The datasets could not be read: ${error.message}`);
    }
  };
  load();
  const unsubscribe = onJob((job, known) => {
    if (job.kind === "import" && job.state === "completed" && known?.state !== "completed") load();
  });
  return unsubscribe;
}

const PAGE_SIZES = [25, 50, 100];

export function datasetView(main, name, query) {
  const heading = h("h1", {}, name);
  const lead = h("p", { class: "lead" });
  const body = h("div", {}, h("p", { role: "status" }, "Loading…"));
  main.append(
    h("p", { class: "back" }, h("a", { href: "#/datasets" }, "← All datasets")),
    h("div", { class: "view-head" }, heading, lead),
    body,
  );
  document.title = `${name} · Collect`;
  let size = Number(query.get("size")) || 25;
  if (!PAGE_SIZES.includes(size)) size = 25;
  const cursors = [null]; // the `after` of each page shown so far
  let page = 0;

  (async () => {
    let dataset;
    try {
      dataset = await api("GET", `/datasets/${encodeURIComponent(name)}`);
    } catch (error) {
      setText(heading, "Dataset not found");
      body.replaceChildren(h("p", {}, error.status === 404 ? `There is no dataset named ${name}: it may have been deleted, or belong to another API key.` : error.message));
      return;
    }
    setText(lead, `${plural(dataset.row_count, "row")} · ${plural(dataset.columns.length, "column")} · version ${dataset.version} · updated ${when(dataset.updated_at)}`);
    const head = h("thead", {}, h("tr", {}, h("th", { scope: "col", class: "num" }, "#"), dataset.columns.map((c) => h("th", { scope: "col" }, c))));
    const rowsBody = h("tbody", { id: "rows" });
    const range = h("p", { class: "range", role: "status", id: "rows-range" });
    const previous = h("button", { type: "button", class: "secondary", id: "rows-previous" }, "← Previous rows");
    const nextButton = h("button", { type: "button", class: "secondary", id: "rows-next" }, "Next rows →");
    const sizeSelect = h(
      "select",
      { id: "rows-size" },
      PAGE_SIZES.map((n) => h("option", { value: n, selected: n === size }, `${n} rows a page`)),
    );
    const deleteButton = h("button", { type: "button", class: "danger", id: "delete-dataset" }, "Delete dataset…");
    const note = h("p", { class: "note", role: "alert", hidden: true });
    let next = null;

    const show = async () => {
      const params = new URLSearchParams({ limit: String(size) });
      if (cursors[page] !== null) params.set("after", cursors[page]);
      try {
        const answer = await api("GET", `/datasets/${encodeURIComponent(name)}/rows?${params}`);
        const first = page * size + 1;
        rowsBody.replaceChildren(
          ...answer.rows.map((row, i) =>
            h(
              "tr",
              {},
              h("td", { class: "num" }, count(first + i)),
              row.map((value) => (value === null ? h("td", {}, h("span", { class: "null" }, "empty")) : h("td", { title: value.length > 40 ? value : null }, value))),
            ),
          ),
        );
        next = answer.next;
        cursors[page + 1] = next;
        // aria-disabled, not disabled: a disabled button would drop the keyboard focus.
        previous.setAttribute("aria-disabled", String(page === 0));
        nextButton.setAttribute("aria-disabled", String(next === null));
        setText(range, answer.rows.length ? `Rows ${count(first)} to ${count(first + answer.rows.length - 1)} of ${count(dataset.row_count)}` : "The dataset has no rows.");
      } catch (error) {
        setText(range, `The rows could not be read: ${error.message}`);
      }
    };
    previous.addEventListener("click", () => {
      if (page > 0) {
        page -= 1;
        show();
      }
    });
    nextButton.addEventListener("click", () => {
      if (next !== null) {
        page += 1;
        show();
      }
    });
    sizeSelect.addEventListener("change", () => {
      size = Number(sizeSelect.value);
      cursors.length = 1;
      page = 0;
      show();
    });
    deleteButton.addEventListener("click", async () => {
      const confirmed = await confirmAction({
        title: `Delete dataset ${name}?`,
        message: `Its ${plural(dataset.row_count, "row")} are deleted for good; exports already written are kept. This cannot be undone.`,
        confirm: "Delete dataset",
        cancel: "Keep it",
      });
      if (!confirmed) return;
      try {
        await api("DELETE", `/datasets/${encodeURIComponent(name)}`);
        location.hash = "#/datasets";
      } catch (error) {
        note.textContent = error.message;
        note.hidden = false;
      }
    });

    const imports = await listAll("/jobs?kind=import").catch(() => []);
    const madeBy = makers(imports, name);
    body.replaceChildren(
      h(
        "div",
        { class: "toolbar" },
        h("a", { class: "button secondary", href: `#/export?dataset=${encodeURIComponent(name)}` }, "Export…"),
        h("a", { class: "button secondary", href: `#/import?dataset=${encodeURIComponent(name)}&mode=append` }, "Append a CSV…"),
        deleteButton,
      ),
      note,
      h(
        "section",
        { class: "panel", "aria-labelledby": "rows-title" },
        h("h2", { id: "rows-title" }, "Rows"),
        h(
          "div",
          { class: "pager" },
          previous,
          nextButton,
          h("label", { for: "rows-size", class: "sr-only" }, "Rows a page"),
          sizeSelect,
          range,
        ),
        h("p", { class: "swipe-hint" }, "Swipe the table sideways to see every column."),
        h(
          "div",
          { class: "table-wrap rows-wrap", tabindex: 0, role: "region", "aria-labelledby": "rows-title" },
          h("table", { class: "rows" }, head, rowsBody),
        ),
      ),
      h(
        "section",
        { class: "panel", "aria-labelledby": "makers-title" },
        h("h2", { id: "makers-title" }, "Made by"),
        madeBy.length
          ? h("ul", { class: "plain makers", id: "makers" }, madeBy.map((job) => h("li", {}, makerLink(job), ` (job ${shortId(job.id)})`)))
          : h("p", {}, "No import job of yours made it."),
      ),
    );
    show();
  })();
  return () => {};
}
