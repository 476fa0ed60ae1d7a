// The bearer token lives in this tab's sessionStorage only: never in a URL, a cookie or
// localStorage. Its claims are read here only to decide what to show; the server checks them.

const KEY = "weaver.token";
const listeners = new Set();

function decode(token) {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error("a token has three parts separated by dots");
  const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  const claims = JSON.parse(new TextDecoder().decode(bytes));
  if (typeof claims !== "object" || claims === null) throw new Error("the token's claims are not an object");
  return claims;
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function claims() {
  const current = token();
  if (!current) return null;
  try {
    return decode(current);
  } catch {
    return null;
  }
}

export function roles() {
  const list = claims()?.roles;
  return Array.isArray(list) ? list : [];
}

/** Editors and admins see the buttons that write (sync, refresh statistics). */
export function canWrite() {
  return roles().some((role) => role === "editor" || role === "admin");
}

export function isAdmin() {
  return roles().includes("admin");
}

/** Keep a pasted token after a first look at it; the server has the last word. */
export function signIn(text) {
  const value = text.trim().replace(/^Bearer\s+/i, "");
  const found = decode(value);
  if (!found.tenant_id || !found.sub) throw new Error("the token has no 'tenant_id' or 'sub' claim");
  if (typeof found.exp === "number" && found.exp * 1000 < Date.now()) throw new Error("the token has expired");
  sessionStorage.setItem(KEY, value);
  listeners.forEach((listener) => listener(null));
}

export function signOut(reason = null) {
  sessionStorage.removeItem(KEY);
  listeners.forEach((listener) => listener(reason));
}

export function onChange(listener) {
  listeners.add(listener);
}
