// The public HTTP API, as any client calls it: bearer token, problem+json errors, and the
// rate limit honoured (a 429 waits for Retry-After, then tries again).

import * as session from "./session.js";
import { toast } from "./dom.js";

const MAX_RATE_LIMIT_RETRIES = 3;
const MAX_RETRY_AFTER_SECONDS = 30;

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function problemOf(response) {
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      /* fall through to a problem of our own */
    }
  }
  return { title: response.statusText || "Error", status: response.status, detail: `the server answered ${response.status}` };
}

/**
 * One call. Returns the Response for 2xx; throws ApiError with the problem otherwise.
 * `body` is sent as JSON; `accept` picks a result format; `signal` aborts.
 */
export async function request(path, { method = "GET", body, headers = {}, accept, signal } = {}) {
  const sent = { ...headers };
  const token = session.token();
  // Signed out: nothing to ask the API (a late view must not send an empty token).
  if (!token && path.startsWith("/api/")) throw new ApiError(401, { title: "Unauthorized", detail: "signed out" });
  if (token) sent.Authorization = `Bearer ${token}`;
  // So that query history can say a query came from the console.
  sent["X-Weaver-Client"] = "console";
  if (accept) sent.Accept = accept;
  if (body !== undefined) sent["Content-Type"] = "application/json";
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(path, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
      credentials: "omit",
    });
    if (response.ok) return response;
    if (response.status === 429 && attempt < MAX_RATE_LIMIT_RETRIES) {
      const problem = await problemOf(response);
      // Too many running queries is the caller's to resolve, not a reason to wait blindly.
      if (!String(problem.type || "").endsWith("too-many-queries")) {
        const wait = Math.min(Number(response.headers.get("Retry-After")) || 1, MAX_RETRY_AFTER_SECONDS);
        toast(`Rate limited: trying again in ${wait} s`, "warn", wait);
        await sleep(wait * 1000);
        continue;
      }
      throw new ApiError(429, problem);
    }
    const problem = await problemOf(response);
    if (response.status === 401 && path.startsWith("/api/")) session.signOut(problem.detail || "the token was refused");
    throw new ApiError(response.status, problem);
  }
}

export async function getJson(path, options) {
  return (await request(path, options)).json();
}

export async function postJson(path, body, options = {}) {
  return (await request(path, { ...options, method: "POST", body })).json();
}

/** Every item of a list endpoint, page after page. */
export async function allItems(path) {
  const items = [];
  let cursor = null;
  do {
    const separator = path.includes("?") ? "&" : "?";
    const page = await getJson(`${path}${separator}limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

/** `/api/v1/metadata/datasources/{name}/…` with every part escaped. */
export function metadataPath(datasource, ...parts) {
  return ["/api/v1/metadata/datasources", datasource, ...parts].map((p, i) => (i ? encodeURIComponent(p) : p)).join("/");
}
