// The dashboard: views chosen by the URL's hash (so that every view, a job's included, has
// its own address to share), one live feed of jobs for the whole page, and the API key box.

import { forgetKey, hasKey, onUnauthorized, setKey } from "./api.js";
import { datasetView, datasetsView } from "./datasets.js";
import { focusHeading, setText } from "./dom.js";
import { exportView } from "./exports.js";
import { importView } from "./imports.js";
import { jobView, jobsView } from "./jobs.js";
import { onFeedStatus, startFeed } from "./store.js";
import { teamView, teamsView } from "./teams.js";

const $ = (selector) => document.querySelector(selector);
const main = $("#main");

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(search);
  const [section = "jobs", id] = parts;
  const views = {
    jobs: () => (id ? jobView(main, id) : jobsView(main, query)),
    import: () => importView(main, query),
    export: () => exportView(main, query),
    teams: () => (id ? teamView(main, id) : teamsView(main, query)),
    datasets: () => (id ? datasetView(main, id, query) : datasetsView(main, query)),
  };
  return { section: views[section] ? section : "jobs", render: views[section] || views.jobs };
}

const TITLES = { jobs: "Jobs", import: "Import", export: "Export", teams: "Teams", datasets: "Datasets" };
let cleanup = () => {};

function show({ focus }) {
  cleanup();
  main.replaceChildren();
  const { section, render } = route();
  document.title = `${TITLES[section]} · Collect`;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  cleanup = render() || (() => {});
  if (focus) focusHeading(main);
}

// The live feed's state, in the header and, while it is away, in a banner.
const FEED_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  "needs-key": "Needs an API key",
};

onFeedStatus((state) => {
  const badge = $("#feed-state");
  badge.dataset.state = state;
  setText(badge, FEED_TEXT[state]);
  $("#feed-banner").hidden = state !== "reconnecting";
});

// The API key box: shown when the service asks for a key; the key lasts for the session.
const keyBox = $("#key-box");
const keyInput = $("#key");

onUnauthorized((hadKey) => {
  if (!keyBox.hidden) return;
  setText(
    $("#key-message"),
    hadKey
      ? "The API key this page has was not accepted. Enter a valid key in this box."
      : "This service needs an API key. Enter yours in this box; the page keeps it until you close the browser.",
  );
  keyBox.hidden = false;
  keyInput.focus();
});

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) {
    setText($("#key-message"), "Enter the API key in this box first.");
    keyInput.focus();
    return;
  }
  setKey(key);
  keyInput.value = "";
  keyBox.hidden = true;
  $("#forget-key").hidden = false;
  startFeed();
  show({ focus: true });
});

$("#forget-key").addEventListener("click", () => {
  forgetKey();
  location.reload();
});
$("#forget-key").hidden = !hasKey();

window.addEventListener("hashchange", () => show({ focus: true }));
startFeed();
show({ focus: false });
