// Building the page: elements from plain data, never from HTML strings, so that nothing a
// user or a file wrote is ever read as markup.

// h("a", {href: "#/jobs", class: "x"}, "text", child, ...): attributes starting with "on" are
// listeners, `false`/null/undefined attributes and children are left out.
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === false || child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

// Set text only when it changed: updates that change nothing touch nothing.
export function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

let counter = 0;
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

// A labelled form field with a hint and a place for the service's refusal:
// returns {wrap, control, error}.
export function field({ label, control, hint, id }) {
  const controlId = id || control.id || uid("field");
  control.id = controlId;
  const hintId = `${controlId}-hint`;
  const errorId = `${controlId}-error`;
  const error = h("p", { class: "field-error", id: errorId, hidden: true });
  control.setAttribute("aria-describedby", hint ? `${hintId} ${errorId}` : errorId);
  const wrap = h(
    "div",
    { class: "field" },
    h("label", { for: controlId }, label),
    control,
    hint && h("p", { class: "hint", id: hintId }, hint),
    error,
  );
  return { wrap, control, error };
}

// A group of radio buttons with a legend and a hint for each choice.
export function radios({ legend, name, choices, checked }) {
  const errorId = uid(`${name}-error`);
  const error = h("p", { class: "field-error", id: errorId, hidden: true });
  const fieldset = h(
    "fieldset",
    { class: "field choices", "aria-describedby": errorId },
    h("legend", {}, legend),
    choices.map(({ value, label, hint }) => {
      const id = uid(`${name}-${value}`);
      const hintId = `${id}-hint`;
      return h(
        "div",
        { class: "choice" },
        h("input", {
          type: "radio",
          name,
          value,
          id,
          checked: value === checked,
          "aria-describedby": hintId,
        }),
        h("label", { for: id }, label),
        h("p", { class: "hint", id: hintId }, hint),
      );
    }),
    error,
  );
  return { wrap: fieldset, control: fieldset, error };
}

export function showError(fieldParts, message) {
  fieldParts.error.textContent = message;
  fieldParts.error.hidden = false;
  for (const control of controlsOf(fieldParts)) control.setAttribute("aria-invalid", "true");
}

export function clearError(fieldParts) {
  fieldParts.error.textContent = "";
  fieldParts.error.hidden = true;
  for (const control of controlsOf(fieldParts)) control.removeAttribute("aria-invalid");
}

function controlsOf(fieldParts) {
  const c = fieldParts.control;
  return c.matches("input, select, textarea") ? [c] : [...c.querySelectorAll("input, select")];
}

// Move the keyboard to a view's heading after navigating, so that reading starts there.
export function focusHeading(root) {
  const heading = root.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}
