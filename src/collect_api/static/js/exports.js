// Export a dataset (#/export): pick it, tick its columns, add filters, choose gzip.

import { api } from "./api.js";
import { clearError, field, h, showError, uid } from "./dom.js";
import { count } from "./format.js";
import { FormErrors, messageBox, startedJobs } from "./forms.js";

const OPERATORS = [
  ["eq", "equals (=)"],
  ["ne", "is not (≠)"],
  ["lt", "less than (<)"],
  ["le", "at most (≤)"],
  ["gt", "more than (>)"],
  ["ge", "at least (≥)"],
  ["contains", "contains"],
  ["in", "is one of"],
];
const NUMBER = /^-?(\d+(\.\d*)?|\.\d+)$/;

// What a user typed, as the service compares it: numbers as numbers, a list for "is one of".
export function filterValue(op, text) {
  const one = (t) => (NUMBER.test(t.trim()) ? Number(t.trim()) : t);
  if (op === "in") return text.split(",").map((t) => one(t.trim()));
  if (op === "contains") return text;
  return one(text);
}

export function exportView(main, query) {
  const datasetSelect = h("select", { id: "export-dataset", name: "dataset" });
  const dataset = field({
    label: "Dataset",
    hint: "The export is a snapshot of the dataset as it is when the job starts.",
    control: datasetSelect,
  });
  const columnsBox = h("div", { class: "checks", id: "export-columns" });
  const columnsError = h("p", { class: "field-error", id: "export-columns-error", hidden: true });
  const columnsSet = h(
    "fieldset",
    { class: "field", "aria-describedby": "export-columns-hint export-columns-error" },
    h("legend", {}, "Columns"),
    h("p", { class: "hint", id: "export-columns-hint" }, "Written in the dataset's order. Untick those to leave out."),
    h(
      "div",
      { class: "check-tools" },
      h("button", { type: "button", class: "link", onclick: () => tickAll(true) }, "Tick all"),
      h("button", { type: "button", class: "link", onclick: () => tickAll(false) }, "Untick all"),
    ),
    columnsBox,
    columnsError,
  );
  const columns = { wrap: columnsSet, control: columnsSet, error: columnsError };
  const filterList = h("ol", { class: "filters-list", id: "export-filters" });
  const addFilter = h("button", { type: "button", class: "secondary", id: "add-filter" }, "Add a filter");
  const filtersSet = h(
    "fieldset",
    { class: "field" },
    h("legend", {}, "Filters"),
    h("p", { class: "hint", id: "export-filters-hint" }, "Only the rows for which every filter holds are written. A number such as 30 compares as a number; for “is one of”, separate the values with commas."),
    filterList,
    addFilter,
  );
  const gzip = h("input", { type: "checkbox", id: "export-gzip", name: "gzip" });
  const gzipField = h(
    "div",
    { class: "field check" },
    gzip,
    h("label", { for: "export-gzip" }, "Compress the file with gzip (.csv.gz)"),
  );
  const submit = h("button", { type: "submit", class: "primary", id: "export-submit" }, "Start the export");
  const message = messageBox("export-message");
  const started = startedJobs("Started here");
  const fields = { dataset, columns };
  const errors = new FormErrors(fields, message);
  const form = h(
    "form",
    { id: "export-form", class: "panel form", novalidate: true, "aria-labelledby": "export-title" },
    dataset.wrap,
    columnsSet,
    filtersSet,
    gzipField,
    h("div", { class: "form-actions" }, submit),
    message,
  );
  main.append(
    h(
      "div",
      { class: "view-head" },
      h("h1", { id: "export-title" }, "Export a dataset"),
      h("p", { class: "lead" }, "Writes the rows you choose to a CSV file (RFC 4180, UTF-8) to download once the job completes."),
    ),
    form,
    started.section,
  );

  let datasets = [];
  let current = null;
  const filters = [];

  function tickAll(on) {
    for (const box of columnsBox.querySelectorAll("input")) box.checked = on;
  }

  function columnOptions(select, chosen) {
    select.replaceChildren(...(current?.columns || []).map((c) => h("option", { value: c, selected: c === chosen }, c)));
  }

  function showDataset(name) {
    current = datasets.find((d) => d.name === name) || null;
    columnsBox.replaceChildren(
      ...(current?.columns || []).map((column) => {
        const id = uid("column");
        return h("div", { class: "check" }, h("input", { type: "checkbox", id, value: column, checked: true }), h("label", { for: id }, column));
      }),
    );
    for (const f of filters) columnOptions(f.column.control, f.column.control.value);
  }

  function removeFilter(entry) {
    const index = filters.indexOf(entry);
    filters.splice(index, 1);
    entry.li.remove();
    renumber();
    (filters[index]?.column.control || addFilter).focus();
  }

  function renumber() {
    filters.forEach((f, i) => {
      f.legend.textContent = `Filter ${i + 1}`;
      f.remove.setAttribute("aria-label", `Remove filter ${i + 1}`);
      fields[`filters.${i}.column`] = f.column;
      fields[`filters.${i}.op`] = f.op;
      fields[`filters.${i}.value`] = f.value;
      fields[`filters[${i}].column`] = f.column;
      fields[`filters[${i}].op`] = f.op;
      fields[`filters[${i}].value`] = f.value;
    });
    for (const key of Object.keys(fields)) {
      const match = key.match(/^filters[.[](\d+)/);
      if (match && Number(match[1]) >= filters.length) delete fields[key];
    }
  }

  addFilter.addEventListener("click", () => {
    const column = field({ label: "Column", control: h("select", { class: "filter-column" }) });
    columnOptions(column.control);
    const op = field({
      label: "Condition",
      control: h("select", { class: "filter-op" }, OPERATORS.map(([value, text]) => h("option", { value }, text))),
    });
    const value = field({ label: "Value", control: h("input", { type: "text", class: "filter-value", autocomplete: "off" }) });
    const legend = h("legend", {});
    const remove = h("button", { type: "button", class: "link danger-link" }, "Remove");
    const li = h("li", {}, h("fieldset", { class: "filter" }, legend, column.wrap, op.wrap, value.wrap, remove));
    const entry = { li, legend, column, op, value, remove };
    remove.addEventListener("click", () => removeFilter(entry));
    filters.push(entry);
    filterList.append(li);
    renumber();
    column.control.focus();
  });

  datasetSelect.addEventListener("change", () => showDataset(datasetSelect.value));

  api("GET", "/datasets?limit=1000")
    .then((page) => {
      datasets = page.items;
      if (!datasets.length) {
        datasetSelect.append(h("option", { value: "" }, "No dataset yet"));
        errors.say("There is no dataset to export yet: import a CSV first.", true);
        return;
      }
      const wanted = query.get("dataset");
      datasetSelect.replaceChildren(
        ...datasets.map((d) => h("option", { value: d.name, selected: d.name === wanted }, `${d.name} (${count(d.row_count)} rows)`)),
      );
      showDataset(datasetSelect.value);
    })
    .catch((error) => errors.say(error.message, true));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.getAttribute("aria-disabled")) return;
    errors.clear();
    for (const f of filters) for (const part of [f.column, f.op, f.value]) clearError(part);
    if (!current) {
      showError(dataset, "Choose a dataset to export.");
      return;
    }
    const ticked = [...columnsBox.querySelectorAll("input:checked")].map((box) => box.value);
    if (!ticked.length) {
      showError(columns, "Tick at least one column.");
      columnsBox.querySelector("input")?.focus();
      return;
    }
    const body = {
      dataset: current.name,
      columns: ticked.length === current.columns.length ? null : ticked,
      filters: filters.map((f) => ({
        column: f.column.control.value,
        op: f.op.control.value,
        value: filterValue(f.op.control.value, f.value.control.value),
      })),
      gzip: gzip.checked,
    };
    submit.setAttribute("aria-disabled", "true");
    try {
      const job = await api("POST", "/exports", body);
      errors.say(`The export of ${job.params.dataset} is queued; its Download link appears below once it completes.`);
      started.add(job);
    } catch (error) {
      errors.show(error);
    } finally {
      submit.removeAttribute("aria-disabled");
    }
  });
  return () => {};
}
