// The console's shell: sign-in, the top bar, the datasource tree and the hash router.

import * as session from "./session.js";
import * as catalog from "./catalog.js";
import { ApiError, request } from "./api.js";
import { clear, h, href, toast } from "./dom.js";
import { catalogHome, datasourceView, schemaView, tableView } from "./catalog-views.js";
import { snapshotsView } from "./snapshots.js";
import { glossaryView } from "./glossary.js";
import { searchView } from "./search.js";
import { forgetSqlPage, sqlView } from "./sql.js";

const main = document.getElementById("main");
const sidebar = document.getElementById("sidebar");

// ------------------------------------------------------------------ theme --

const THEME_KEY = "weaver.theme";

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  const toggle = document.getElementById("theme-toggle");
  const other = theme === "dark" ? "light" : "dark";
  toggle.setAttribute("aria-label", `Switch to ${other} theme`);
  toggle.title = `Switch to ${other} theme`;
}

function initialTheme() {
  const saved = localStorage.getItem(THEME_KEY);
  if (saved === "dark" || saved === "light") return saved;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

document.getElementById("theme-toggle").addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  localStorage.setItem(THEME_KEY, next);
  applyTheme(next);
});
applyTheme(initialTheme());

// ---------------------------------------------------------------- sign-in --

const devTokenAvailable = document.documentElement.dataset.devToken === "available";

function showSignedIn(signedIn) {
  document.querySelectorAll("[data-signed-in]").forEach((node) => (node.hidden = !signedIn));
  document.getElementById("signin").hidden = signedIn;
}

function showSignIn(message) {
  showSignedIn(false);
  const error = document.getElementById("signin-error");
  error.hidden = !message;
  error.textContent = message || "";
  document.getElementById("dev-token").hidden = !devTokenAvailable;
  document.getElementById("dev-token-hint").hidden = !devTokenAvailable;
  document.getElementById("token-input").focus();
}

async function verifyAndEnter(token) {
  const error = document.getElementById("signin-error");
  try {
    session.signIn(token);
    // One real call: a token the server refuses goes back to the form with its detail.
    await request("/api/datasources?limit=1");
    error.hidden = true;
    document.getElementById("token-input").value = "";
    enter();
  } catch (failure) {
    if (session.token()) session.signOut();
    showSignIn(`Not signed in: ${failure instanceof ApiError ? failure.problem.detail : failure.message}`);
  }
}

document.getElementById("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  verifyAndEnter(document.getElementById("token-input").value);
});

document.getElementById("dev-token").addEventListener("click", async () => {
  try {
    const minted = await (await request("/console/dev-token", { method: "POST" })).json();
    await verifyAndEnter(minted.token);
  } catch (failure) {
    const error = document.getElementById("signin-error");
    error.hidden = false;
    error.textContent = failure.message;
  }
});

document.getElementById("sign-out").addEventListener("click", () => session.signOut());

session.onChange((reason) => {
  if (!session.token()) {
    catalog.reset();
    forgetSqlPage();
    expanded.clear();
    sessionStorage.removeItem("weaver.expanded");
    showSignIn(reason ? `Signed out: ${reason}` : null);
  }
});

function enter() {
  const claims = session.claims();
  const roleText = session.roles().join(", ") || "no role";
  document.getElementById("identity").textContent = `${claims.sub} · ${claims.tenant_id} · ${roleText}`;
  showSignedIn(true);
  catalog.reset();
  renderSidebar();
  route();
}

// ---------------------------------------------------------------- sidebar --

const expanded = new Set(JSON.parse(sessionStorage.getItem("weaver.expanded") || "[]"));

function toggleExpanded(key) {
  if (expanded.has(key)) expanded.delete(key);
  else expanded.add(key);
  sessionStorage.setItem("weaver.expanded", JSON.stringify([...expanded]));
  renderSidebar();
}

function treeToggle(key, label) {
  const open = expanded.has(key);
  return h("button", {
    type: "button",
    class: "tree-toggle",
    "aria-expanded": String(open),
    "aria-label": `${open ? "Collapse" : "Expand"} ${label}`,
    on: { click: () => toggleExpanded(key) },
  }, open ? "▾" : "▸");
}

async function renderSidebar() {
  const list = h("ul", { class: "tree" });
  const wrapper = h("div", {}, h("h2", { class: "sidebar-title" }, "Datasources"), list);
  clear(sidebar).append(wrapper);
  let items;
  try {
    items = await catalog.datasources();
  } catch (error) {
    list.append(h("li", { class: "muted" }, error.message));
    return;
  }
  if (!items.length) list.append(h("li", { class: "muted small" }, "No datasources in this tenant yet."));
  for (const ds of items) {
    const key = `ds:${ds.name}`;
    const item = h("li", {}, h("div", { class: "tree-row" },
      treeToggle(key, ds.name),
      h("a", { href: href("catalog", ds.name), "data-tree": ds.name }, ds.name),
      h("span", { class: "badge engine" }, ds.engine)));
    list.append(item);
    if (expanded.has(key)) item.append(await schemaBranch(ds.name));
  }
  markCurrent();
}

async function schemaBranch(ds) {
  const list = h("ul", { class: "tree" });
  const found = await catalog.schemas(ds).catch(() => null);
  if (!found) {
    list.append(h("li", { class: "muted small" }, "not synced yet"));
    return list;
  }
  for (const schema of found) {
    const key = `schema:${ds}:${schema.name}`;
    const item = h("li", {}, h("div", { class: "tree-row" },
      treeToggle(key, `${ds}.${schema.name}`),
      h("a", { href: href("catalog", ds, schema.name), "data-tree": `${ds}/${schema.name}` }, schema.name),
      h("span", { class: "muted small" }, String(schema.table_count))));
    list.append(item);
    if (expanded.has(key)) {
      const tables = h("ul", { class: "tree leaves" });
      for (const table of (await catalog.tables(ds, schema.name).catch(() => null)) || []) {
        tables.append(h("li", {}, h("a", {
          href: href("catalog", ds, schema.name, table.name),
          "data-tree": `${ds}/${schema.name}/${table.name}`,
        }, table.name)));
      }
      item.append(tables);
    }
  }
  return list;
}

function markCurrent() {
  const [section, ...parts] = currentRoute().parts;
  sidebar.querySelectorAll("a[aria-current]").forEach((a) => a.removeAttribute("aria-current"));
  if (section === "catalog" && parts.length) {
    const link = sidebar.querySelector(`a[data-tree="${CSS.escape(parts.join("/"))}"]`);
    if (link) link.setAttribute("aria-current", "page");
  }
  document.querySelectorAll(".tabs a").forEach((a) => {
    const current = a.dataset.section === (section || "catalog") || (section === "snapshots" && a.dataset.section === "catalog");
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
}

catalog.onChange(() => renderSidebar());

// ----------------------------------------------------------------- router --

function currentRoute() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query) };
}

const views = {
  catalog: ([ds, schema, table]) =>
    table ? tableView(ds, schema, table) : schema ? schemaView(ds, schema) : ds ? datasourceView(ds) : catalogHome(),
  snapshots: ([ds], params) => snapshotsView(ds, params),
  sql: (_, params) => sqlView(params),
  glossary: (_, params) => glossaryView(params),
  search: (_, params) => searchView(params),
};

let routing = 0;

async function route() {
  if (!session.token()) return showSignIn(null);
  const { parts, params } = currentRoute();
  const [section = "catalog", ...rest] = parts;
  const view = views[section] || views.catalog;
  const ticket = ++routing;
  main.setAttribute("aria-busy", "true");
  try {
    const content = await view(rest, params);
    // A later navigation won the race: its page is the one to show.
    if (ticket !== routing) return;
    clear(main).append(content);
  } catch (error) {
    if (ticket !== routing) return;
    if (!session.token()) return;
    clear(main).append(h("div", { class: "empty" },
      h("h1", {}, error instanceof ApiError && error.status === 404 ? "Not found" : "Something went wrong"),
      h("p", {}, error.message)));
  } finally {
    if (ticket === routing) main.removeAttribute("aria-busy");
  }
  markCurrent();
  const search = document.getElementById("search-input");
  if (section === "search") search.value = params.get("q") || "";
  const title = main.querySelector("h1");
  document.title = title ? `${title.textContent} · Weaver` : "Weaver console";
}

window.addEventListener("hashchange", () => {
  route();
  main.focus({ preventScroll: true });
});

document.querySelector("form.search").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = document.getElementById("search-input").value.trim();
  if (q) location.hash = `#/search?q=${encodeURIComponent(q)}`;
});

document.addEventListener("keydown", (event) => {
  const typing = event.target.closest("input, textarea, select, .CodeMirror, [contenteditable]");
  if (event.key === "/" && !typing && session.token()) {
    event.preventDefault();
    document.getElementById("search-input").focus();
  }
});

window.addEventListener("unhandledrejection", (event) => {
  if (event.reason instanceof ApiError || event.reason instanceof Error) toast(event.reason.message, "error");
});

// ------------------------------------------------------------------- boot --

if (session.token() && session.claims()) enter();
else showSignIn(null);
