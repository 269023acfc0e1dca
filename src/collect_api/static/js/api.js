// Requests to the service. Every request sends the `collect_key` cookie, when the page has
// one: browsers cannot put a header on an EventSource, so the key travels as a cookie for
// every request alike.

const KEY_COOKIE = "collect_key";

// The page's own words for a missing or unknown key: the service's speak of HTTP headers.
const NEEDS_KEY =
  "This service needs an API key: enter it in the API key box at the top of the page, then try again.";

export class Refusal extends Error {
  // A problem answered by the service (RFC 9457), or a request that did not get through.
  constructor(status, problem) {
    super(status === 401 ? NEEDS_KEY : problem.detail || `The service answered ${status}.`);
    this.status = status;
    this.problem = problem;
  }
}

const listeners = new Set();

// Called with every 401 to a request sent with the key the page has now, so that the page
// can ask for a key. A 401 to a request sent with an earlier key says nothing of this one:
// answers may arrive after the key was changed.
export function onUnauthorized(listener) {
  listeners.add(listener);
}

function unauthorized(sentWith) {
  if (sentWith !== currentKey()) return;
  for (const listener of listeners) listener(sentWith !== null);
}

// The key requests carry now (the cookie's value), or null.
export function currentKey() {
  const prefix = `${KEY_COOKIE}=`;
  const cookie = document.cookie.split("; ").find((c) => c.startsWith(prefix));
  return cookie === undefined ? null : cookie.slice(prefix.length);
}

export function hasKey() {
  return currentKey() !== null;
}

export function setKey(key) {
  // A session cookie: it lasts until the browser is closed.
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${KEY_COOKIE}=${encodeURIComponent(key)}; path=/; SameSite=Strict${secure}`;
}

export function forgetKey() {
  document.cookie = `${KEY_COOKIE}=; path=/; SameSite=Strict; Max-Age=0`;
}

const UNREACHABLE = {
  title: "Service unreachable",
  detail: "The service cannot be reached; try again once it is back.",
};

async function problemOf(response) {
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      // fall through: an unreadable body
    }
  }
  return { title: response.statusText, detail: `The service answered ${response.status}.` };
}

// JSON in, JSON out; throws a Refusal for any status but 2xx.
export async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const sentWith = currentKey();
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new Refusal(0, UNREACHABLE);
  }
  if (response.status === 401) unauthorized(sentWith);
  if (!response.ok) throw new Refusal(response.status, await problemOf(response));
  if (response.status === 204) return null;
  return response.json();
}

// The response itself, for bodies that are not JSON (CSV); throws a Refusal as `api` does.
export async function fetchRaw(path) {
  const sentWith = currentKey();
  let response;
  try {
    response = await fetch(path, { credentials: "same-origin" });
  } catch {
    throw new Refusal(0, UNREACHABLE);
  }
  if (response.status === 401) unauthorized(sentWith);
  if (!response.ok) throw new Refusal(response.status, await problemOf(response));
  return response;
}

// A multipart upload with progress: XMLHttpRequest reports how much of the body was sent.
export function upload(path, formData, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    const sentWith = currentKey();
    request.open("POST", path);
    request.withCredentials = true;
    request.responseType = "text";
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    request.onload = () => {
      let body = {};
      try {
        body = JSON.parse(request.responseText || "{}");
      } catch {
        body = { detail: `The service answered ${request.status}.` };
      }
      if (request.status === 401) unauthorized(sentWith);
      if (request.status >= 200 && request.status < 300) resolve(body);
      else reject(new Refusal(request.status, body));
    };
    request.onerror = () => reject(new Refusal(0, UNREACHABLE));
    request.send(formData);
  });
}

// Every page of a list, up to `most` items.
export async function listAll(path, most = 5000) {
  const items = [];
  let after = null;
  do {
    const separator = path.includes("?") ? "&" : "?";
    const cursor = after === null ? "" : `&after=${encodeURIComponent(after)}`;
    const page = await api("GET", `${path}${separator}limit=1000${cursor}`);
    items.push(...page.items);
    after = page.next;
  } while (after !== null && items.length < most);
  return items;
}
