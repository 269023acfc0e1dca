// What the forms share: refusals shown next to the field they are about, an upload with its
// progress bar, and the live cards of the jobs a form started.

import { upload } from "./api.js";
import { clearError, field, h, radios, setText, showError, uid } from "./dom.js";
import { JobCard } from "./jobcard.js";
import { putJob } from "./store.js";

// The field a problem is about: named by the service, or known from the status.
export function fieldOf(problem, status, fields) {
  if (problem.field && fields[problem.field]) return fields[problem.field];
  const loc = problem.errors?.[0]?.loc;
  if (Array.isArray(loc)) {
    const name = loc.filter((part) => part !== "body").join(".");
    if (fields[name]) return fields[name];
    if (fields[loc[1]]) return fields[loc[1]];
  }
  if (fields.dataset && (status === 409 || problem.dataset)) return fields.dataset;
  if (fields.file && (status === 413 || problem.code || problem.line || problem.missing)) return fields.file;
  return null;
}

export class FormErrors {
  constructor(fields, message) {
    this.fields = fields;
    this.message = message;
  }

  clear() {
    for (const parts of Object.values(this.fields)) clearError(parts);
    this.message.hidden = true;
    this.message.className = "message";
    setText(this.message, "");
  }

  // Show a refusal next to its field (and move the keyboard there), or above the form.
  show(error) {
    const parts = error.status ? fieldOf(error.problem, error.status, this.fields) : null;
    if (parts && error.status !== 401) {
      showError(parts, error.message);
      const control = parts.control.matches("input, select") ? parts.control : parts.control.querySelector("input, select");
      control?.focus();
    } else {
      this.say(error.message, true);
    }
  }

  say(text, isError = false) {
    this.message.hidden = false;
    this.message.className = isError ? "message error" : "message success";
    setText(this.message, text);
  }
}

export function messageBox(id) {
  return h("p", { class: "message", id, role: "status", hidden: true });
}

// The cards of the jobs started from a form, newest first.
export function startedJobs(title) {
  const list = h("ol", { class: "job-list started" });
  const section = h("section", { class: "started-jobs", hidden: true }, h("h2", {}, title), list);
  return {
    section,
    add(job) {
      section.hidden = false;
      list.prepend(h("li", {}, new JobCard(putJob(job)).el));
    },
  };
}

export function fileField({ id, label, hint }) {
  return field({
    label,
    hint,
    control: h("input", { type: "file", id, name: "file", accept: ".csv,.tsv,.txt,text/csv,text/plain" }),
  });
}

export function onErrorField(name = "on_error") {
  return radios({
    legend: "Bad records",
    name,
    checked: "abort",
    choices: [
      { value: "abort", label: "Stop at the first bad record", hint: "The job fails, names the line, and keeps nothing." },
      { value: "skip", label: "Set bad records aside", hint: "The other records are imported; the rejected ones can be read and downloaded from the job's page." },
    ],
  });
}

// Encoding, delimiter and the most rejected records, folded away.
export function moreOptions(prefix) {
  const maxErrors = field({
    label: "Most rejected records",
    hint: "With bad records set aside: one more than this fails the job.",
    control: h("input", { type: "number", id: `${prefix}-max-errors`, name: "max_errors", min: 0, step: 1, value: 1000, inputmode: "numeric" }),
  });
  const encoding = field({
    label: "Encoding",
    hint: "How the file's text is written. UTF-8 is the most common.",
    control: h(
      "select",
      { id: `${prefix}-encoding`, name: "encoding" },
      h("option", { value: "utf-8" }, "UTF-8 (with or without a BOM)"),
      h("option", { value: "utf-16" }, "UTF-16 (with a BOM)"),
      h("option", { value: "latin-1" }, "Latin-1"),
    ),
  });
  const delimiter = field({
    label: "Delimiter",
    hint: "What separates the fields; the job's page says which one was found.",
    control: h(
      "select",
      { id: `${prefix}-delimiter`, name: "delimiter" },
      h("option", { value: "auto" }, "Find it (, ; tab or |)"),
      h("option", { value: "," }, "Comma ,"),
      h("option", { value: ";" }, "Semicolon ;"),
      h("option", { value: "tab" }, "Tab"),
      h("option", { value: "|" }, "Bar |"),
    ),
  });
  const wrap = h(
    "details",
    { class: "more-options" },
    h("summary", {}, "More options: encoding, delimiter, rejected records"),
    h("div", { class: "options-grid" }, encoding.wrap, delimiter.wrap, maxErrors.wrap),
  );
  return { wrap, fields: { max_errors: maxErrors, encoding, delimiter } };
}

// The upload's progress: a labelled bar shown while the file is sent.
export function uploadProgress() {
  const id = uid("upload");
  const bar = h("progress", { id, max: 100, value: 0 });
  const label = h("label", { for: id }, "Uploading…");
  const figure = h("span", { class: "upload-percent" }, "0%");
  const wrap = h("div", { class: "upload-progress", hidden: true }, label, bar, figure);
  return {
    wrap,
    start(name) {
      setText(label, `Uploading ${name}…`);
      bar.value = 0;
      setText(figure, "0%");
      wrap.hidden = false;
    },
    update(fraction) {
      bar.value = Math.round(fraction * 100);
      setText(figure, `${Math.round(fraction * 100)}%`);
      if (fraction >= 1) setText(label, "Uploaded; the service is checking the file…");
    },
    stop() {
      wrap.hidden = true;
    },
  };
}

// Submit a multipart form to `path`; resolves with the queued job or shows the refusal.
export async function submitUpload({ form, path, errors, progress, submit }) {
  const file = form.querySelector("input[type=file]").files[0];
  const data = new FormData(form);
  submit.setAttribute("aria-disabled", "true");
  progress.start(file.name);
  try {
    return await upload(path, data, (fraction) => progress.update(fraction));
  } catch (error) {
    errors.show(error);
    return null;
  } finally {
    progress.stop();
    submit.removeAttribute("aria-disabled");
  }
}
