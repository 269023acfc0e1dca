// The dashboard: jobs live over Server-Sent Events (GET /events), controls and uploads
// through the same API as any other client. With API keys configured the key is kept in the
// `collect_key` cookie, which the browser sends with every request, EventSource included.
"use strict";

const jobs = new Map();
const $ = (selector) => document.querySelector(selector);

function apiKey() {
  const match = document.cookie.match(/(?:^|; )collect_key=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(method, path, body) {
  const response = await fetch(path, { method, body, credentials: "same-origin" });
  if (response.status === 401) { $("#key-form").hidden = false; }
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) { throw new Error(data?.detail || `${response.status} ${response.statusText}`); }
  return data;
}

function say(text, isError = false) {
  $("#message").textContent = text;
  $("#message").className = isError ? "error" : "";
}

function controls(job) {
  const can = {
    pause: ["queued", "running"].includes(job.state),
    resume: job.state === "paused",
    terminate: ["queued", "running", "paused", "pausing"].includes(job.state),
  };
  const cell = document.createElement("td");
  for (const [action, allowed] of Object.entries(can)) {
    if (!allowed) continue;
    const button = document.createElement("button");
    button.textContent = action;
    button.dataset.action = action;
    button.addEventListener("click", async () => {
      button.disabled = true;
      try { show(await api("POST", `/jobs/${job.id}/${action}`)); }
      catch (error) { say(error.message, true); }
      finally { button.disabled = false; }
    });
    cell.append(button, " ");
  }
  if (job.kind === "export" && job.state === "completed" && job.result?.download_url) {
    const link = document.createElement("a");
    link.href = job.result.download_url;
    link.textContent = "download";
    cell.append(link);
  }
  return cell;
}

function show(job) {
  const known = jobs.get(job.id);
  if (known && known.updated_at > job.updated_at) return;  // an older event
  jobs.set(job.id, job);
  let row = document.getElementById(`job-${job.id}`);
  if (!row) {
    row = document.createElement("tr");
    row.id = `job-${job.id}`;
    $("#jobs").prepend(row);
  }
  const p = job.progress;
  const what = job.params.dataset ? `${job.kind} → ${job.params.dataset}` : job.kind;
  row.dataset.state = job.state;
  row.innerHTML = `<td><code>${job.id}</code></td><td></td><td class="state state-${job.state}"></td>
    <td><progress max="100"></progress> <span class="numbers"></span></td>`;
  row.children[1].textContent = what;
  row.children[2].textContent = job.state;
  row.querySelector("progress").value = p.percent;
  const rate = p.rate_per_s ? `, ${Math.round(p.rate_per_s).toLocaleString()}/s` : "";
  row.querySelector(".numbers").textContent =
    `${p.percent.toFixed(1)}% · ${p.done.toLocaleString()} ${p.unit}${rate}`;
  if (job.error) {
    const error = document.createElement("div");
    error.className = "error";
    error.textContent = job.error.message;
    row.children[2].append(error);
  }
  row.append(controls(job));
  if (job.state === "completed") { loadDatasets(); }
}

async function loadJobs() {
  const page = await api("GET", "/jobs?limit=50");
  for (const job of page.items.reverse()) show(job);
}

async function loadDatasets() {
  const page = await api("GET", "/datasets");
  $("#datasets").replaceChildren(...page.items.map((d) => {
    const item = document.createElement("li");
    item.textContent = `${d.name}: ${d.row_count.toLocaleString()} rows, ${d.columns.length} columns`;
    return item;
  }));
}

function follow() {
  const feed = new EventSource("/events");
  for (const kind of ["snapshot", "progress", "state"]) {
    feed.addEventListener(kind, (event) => show(JSON.parse(event.data)));
  }
  feed.onopen = () => { $("#feed-state").textContent = "live"; };
  feed.onerror = () => { $("#feed-state").textContent = "reconnecting…"; };
}

$("#import-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const request = new XMLHttpRequest();  // XHR: it reports upload progress
  const bar = $("#upload-progress");
  bar.hidden = false;
  request.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
  request.onload = () => {
    bar.hidden = true;
    const data = JSON.parse(request.responseText || "{}");
    if (request.status === 202) { show(data); say(`Import ${data.id} queued.`); event.target.reset(); }
    else { say(data.detail || `upload failed (${request.status})`, true); }
  };
  request.onerror = () => { bar.hidden = true; say("the upload failed; is the service running?", true); };
  request.open("POST", "/imports");
  request.send(form);
});

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  document.cookie = `collect_key=${encodeURIComponent($("#key").value)}; path=/; SameSite=Strict`;
  location.reload();
});

(async () => {
  try { await loadJobs(); await loadDatasets(); follow(); }
  catch (error) { say(error.message, true); }
  if (apiKey()) $("#key").value = apiKey();
})();
