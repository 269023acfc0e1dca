// Import a CSV into a dataset (#/import).

import { api } from "./api.js";
import { field, h, radios, showError } from "./dom.js";
import { FormErrors, fileField, messageBox, moreOptions, onErrorField, startedJobs, submitUpload, uploadProgress } from "./forms.js";

const DATASET_NAME = /^[a-z][a-z0-9_]{0,62}$/;

export function importView(main, query) {
  const file = fileField({
    id: "import-file",
    label: "CSV file",
    hint: "Text in UTF-8, UTF-16 or Latin-1, whose first line names the columns.",
  });
  const names = h("datalist", { id: "dataset-names" });
  const dataset = field({
    label: "Dataset",
    hint: "1 to 63 lower-case letters, digits and _, starting with a letter, such as responses. To append or replace, the name of an existing dataset.",
    control: h("input", {
      type: "text",
      id: "import-dataset",
      name: "dataset",
      autocomplete: "off",
      spellcheck: "false",
      autocapitalize: "none",
      list: "dataset-names",
      value: query.get("dataset") || "",
    }),
  });
  const mode = radios({
    legend: "Mode",
    name: "mode",
    checked: query.get("mode") || "create",
    choices: [
      { value: "create", label: "Create a new dataset", hint: "Refused if a dataset of that name exists." },
      { value: "append", label: "Append to a dataset", hint: "Adds the rows to an existing dataset with the same columns." },
      { value: "replace", label: "Replace a dataset", hint: "Its rows become the file's, once the import completes." },
    ],
  });
  const onError = onErrorField();
  const more = moreOptions("import");
  const submit = h("button", { type: "submit", class: "primary", id: "import-submit" }, "Upload and import");
  const message = messageBox("import-message");
  const progress = uploadProgress();
  const started = startedJobs("Started here");
  const fields = { file, dataset, mode, on_error: onError, ...more.fields };
  const errors = new FormErrors(fields, message);

  const form = h(
    "form",
    { id: "import-form", class: "panel form", novalidate: true, "aria-labelledby": "import-title" },
    file.wrap,
    dataset.wrap,
    names,
    h("div", { class: "choice-row" }, mode.wrap, onError.wrap),
    more.wrap,
    h("div", { class: "form-actions" }, submit, progress.wrap),
    message,
  );
  main.append(
    h(
      "div",
      { class: "view-head" },
      h("h1", { id: "import-title" }, "Import a CSV"),
      h("p", { class: "lead" }, "The rows become visible in the dataset when the import completes; if it fails or is terminated, the dataset stays as it was."),
    ),
    form,
    started.section,
  );

  api("GET", "/datasets?limit=1000")
    .then((page) => names.replaceChildren(...page.items.map((d) => h("option", { value: d.name }))))
    .catch(() => {});

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.getAttribute("aria-disabled")) return;
    errors.clear();
    if (!file.control.files.length) {
      showError(file, "Choose the CSV file to import.");
      file.control.focus();
      return;
    }
    const name = dataset.control.value.trim();
    if (!DATASET_NAME.test(name)) {
      showError(dataset, name ? `“${name}” is not a dataset name: use 1 to 63 lower-case letters, digits and _, starting with a letter.` : "Name the dataset to import into.");
      dataset.control.focus();
      return;
    }
    dataset.control.value = name;
    const job = await submitUpload({ form, path: "/imports", errors, progress, submit });
    if (job) {
      errors.say(`The import into ${job.params.dataset} is queued; follow it below.`);
      started.add(job);
      file.control.value = "";
    }
  });
  return () => {};
}
