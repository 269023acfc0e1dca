// Asking before doing what cannot be undone: a modal dialog whose safe choice has the focus.

import { h, uid } from "./dom.js";

export function confirmAction({ title, message, confirm, cancel }) {
  return new Promise((resolve) => {
    const titleId = uid("confirm-title");
    const messageId = uid("confirm-message");
    const previous = document.activeElement;
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": titleId, "aria-describedby": messageId },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: titleId }, title),
        h("p", { id: messageId }, message),
        h(
          "div",
          { class: "dialog-actions" },
          h("button", { type: "submit", value: "cancel", class: "secondary", autofocus: true }, cancel),
          h("button", { type: "submit", value: "confirm", class: "danger" }, confirm),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      const confirmed = dialog.returnValue === "confirm";
      dialog.remove();
      if (previous && previous.isConnected) previous.focus();
      resolve(confirmed);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
