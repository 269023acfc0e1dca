// The jobs the page knows, as the service last described them, and the live feed that keeps
// them current: GET /events, one EventSource for the whole page.

import { api, currentKey, Refusal } from "./api.js";

export const TERMINAL = new Set(["completed", "failed", "terminated"]);

const jobs = new Map();
const jobListeners = new Set();

// Keep the newer of two documents of a job: events and control answers may cross.
export function putJob(job) {
  const known = jobs.get(job.id);
  if (known) {
    if (known.updated_at > job.updated_at) return known;
    if (TERMINAL.has(known.state) && !TERMINAL.has(job.state)) return known;
  }
  jobs.set(job.id, job);
  for (const listener of jobListeners) listener(job, known);
  return job;
}

export function knownJob(id) {
  return jobs.get(id);
}

export function knownJobs() {
  return [...jobs.values()];
}

export function onJob(listener) {
  jobListeners.add(listener);
  return () => jobListeners.delete(listener);
}

// The feed. Its state is "connecting", "live", "reconnecting" or "needs-key".
const feedListeners = new Set();
const resyncListeners = new Set();
let source = null;
let feedState = "connecting";
let retryTimer = null;
let retryDelay = 1000;
let lost = false;
let feedGeneration = 0; // one more at every start: a retry of an earlier feed gives up
let opened = null;
let openedResolve = null;

export function feedStatus() {
  return feedState;
}

export function onFeedStatus(listener) {
  feedListeners.add(listener);
  listener(feedState);
  return () => feedListeners.delete(listener);
}

// Called once the feed is back after it was lost: what happened meanwhile is fetched again.
export function onResync(listener) {
  resyncListeners.add(listener);
  return () => resyncListeners.delete(listener);
}

function setFeedState(state) {
  feedState = state;
  for (const listener of feedListeners) listener(state);
}

// Resolves once the feed is open, or after `timeoutMs` whatever happens: lists are read
// after subscribing, so that no change falls between the read and the first event.
export function feedOpen(timeoutMs = 3000) {
  if (feedState === "live") return Promise.resolve();
  return Promise.race([opened, new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
}

export function startFeed() {
  stopFeed();
  feedGeneration += 1;
  opened = new Promise((resolve) => {
    openedResolve = resolve;
  });
  source = new EventSource("/events", { withCredentials: true });
  const receive = (event) => putJob(JSON.parse(event.data));
  for (const kind of ["snapshot", "progress", "state"]) source.addEventListener(kind, receive);
  source.onopen = () => {
    retryDelay = 1000;
    setFeedState("live");
    openedResolve();
    if (lost) {
      lost = false;
      resync();
    }
  };
  source.onerror = () => {
    lost = true;
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up (an error status, or no event stream): retry by hand.
      source.close();
      source = null;
      scheduleRetry();
    }
    if (feedState !== "needs-key") setFeedState("reconnecting");
  };
}

export function stopFeed() {
  clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
}

function scheduleRetry() {
  clearTimeout(retryTimer);
  const generation = feedGeneration;
  retryTimer = setTimeout(async () => {
    const sentWith = currentKey();
    try {
      await api("GET", "/jobs?limit=1");
    } catch (error) {
      // The feed was started again meanwhile (with a new key): this retry is over.
      if (generation !== feedGeneration) return;
      if (error instanceof Refusal && error.status === 401 && sentWith === currentKey()) {
        setFeedState("needs-key");
        return; // the key box starts the feed again
      }
    }
    if (generation !== feedGeneration) return;
    retryDelay = Math.min(retryDelay * 2, 10000);
    startFeed();
  }, retryDelay);
}

async function resync() {
  // Jobs that ended while the feed was away are no longer in its snapshots.
  const unfinished = knownJobs().filter((job) => !TERMINAL.has(job.state));
  await Promise.all(
    unfinished.map(async (job) => {
      try {
        putJob(await api("GET", `/jobs/${job.id}`));
      } catch {
        // it stays as it was; the next resync tries again
      }
    }),
  );
  for (const listener of resyncListeners) listener();
}
