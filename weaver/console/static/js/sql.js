// The SQL page: editor, the query's lifecycle (async with polling, or a synchronous
// answer from a server that runs it at once), paged results, downloads and history.

import { ApiError, getJson, request } from "./api.js";
import { clear, count, duration, h, plural, timeAgo, toast } from "./dom.js";
import { sqlHint } from "./completion.js";
import * as catalog from "./catalog.js";
import * as session from "./session.js";

const PAGE_ROWS = 100;
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const DRAFT_KEY = "weaver.sql";
const FORMATS = {
  csv: { accept: "text/csv", extension: "csv", label: "CSV" },
  ndjson: { accept: "application/x-ndjson", extension: "ndjson", label: "NDJSON" },
};
// sqlglot's words: "could not parse SQL at line 2, column 7 near 'FROM': ..."
const PARSE_POSITION = /at line (\d+), column (\d+)(?: near (['"])(.*?)\3)?/;

const NUMERIC_TYPE = /int|real|float|double|numeric|decimal|number/i;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let ui = null; // the page is built once and kept, with its editor and last result.
let current = null; // the query on screen.

function build() {
  const limit = h("select", { id: "row-limit" },
    [1000, 10000, 100000].map((n) => h("option", { value: String(n) }, n.toLocaleString())));
  const runButton = h("button", { type: "button", class: "primary", id: "run-query" }, "Run");
  const cancelButton = h("button", { type: "button", id: "cancel-query", disabled: true }, "Cancel");
  const host = h("div", { class: "editor-host" });
  const status = h("div", { class: "status-bar", id: "query-status", role: "status", "aria-live": "polite" },
    h("span", { class: "muted" }, "Write a query and press Ctrl+Enter (⌘+Enter on a Mac)."));
  const error = h("div", { class: "query-error", id: "query-error", role: "alert", hidden: true });
  const results = h("div", { class: "results", id: "results" });
  const history = h("div", { class: "history", id: "history" });

  const tabs = [
    { id: "results", label: "Results", panel: h("div", {}, error, results) },
    { id: "history", label: "History", panel: history, onShow: () => showHistory(history) },
  ];
  const tabList = h("div", { class: "tablist", role: "tablist", "aria-label": "Output" });
  const panels = [];
  const select = (wanted, focus = false) => {
    for (const tab of tabs) {
      const on = tab.id === wanted;
      tab.button.setAttribute("aria-selected", String(on));
      tab.button.tabIndex = on ? 0 : -1;
      tab.panelNode.hidden = !on;
      if (on && focus) tab.button.focus();
      if (on && tab.onShow) tab.onShow();
    }
  };
  tabs.forEach((tab, index) => {
    tab.button = h("button", {
      type: "button", role: "tab", id: `tab-${tab.id}`, "aria-controls": `panel-${tab.id}`,
      on: {
        click: () => select(tab.id),
        keydown: (event) => {
          const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
          if (step) select(tabs[(index + step + tabs.length) % tabs.length].id, true);
        },
      },
    }, tab.label);
    tab.panelNode = h("div", { role: "tabpanel", id: `panel-${tab.id}`, "aria-labelledby": `tab-${tab.id}`, class: "panel" }, tab.panel);
    tabList.append(tab.button);
    panels.push(tab.panelNode);
  });

  const root = h("div", { class: "page sql-page" },
    h("h1", { class: "visually-hidden" }, "SQL"),
    h("div", { class: "editor-card" },
      h("div", { class: "toolbar" },
        runButton, cancelButton,
        h("label", { for: "row-limit", class: "muted small" }, "Row limit"), limit,
        h("span", { class: "muted small keys" }, "Ctrl+Enter runs · Ctrl+Space completes · a selection runs alone")),
      host),
    status, tabList, panels);

  const editor = CodeMirror(host, {
    value: sessionStorage.getItem(DRAFT_KEY) || "SELECT c.country, count(*) AS orders\nFROM demo.orders o\nJOIN demo.customers c ON c.id = o.customer_id\nGROUP BY c.country\nORDER BY orders DESC",
    mode: "text/x-sql",
    theme: "weaver",
    lineNumbers: true,
    matchBrackets: true,
    autoCloseBrackets: true,
    indentUnit: 2,
    tabSize: 2,
    viewportMargin: Infinity,
    screenReaderLabel: "SQL editor",
    placeholder: "SELECT …",
    extraKeys: {
      "Ctrl-Enter": () => run(),
      "Cmd-Enter": () => run(),
      "Ctrl-Space": (cm) => cm.showHint({ hint: sqlHint, completeSingle: false }),
      "Ctrl-/": "toggleComment",
      "Cmd-/": "toggleComment",
      // Tab leaves the editor, so that the keyboard is never trapped in it.
      Tab: false,
      "Shift-Tab": false,
    },
  });
  editor.on("change", () => {
    sessionStorage.setItem(DRAFT_KEY, editor.getValue());
    clearErrorMark();
  });
  editor.on("inputRead", (cm, change) => {
    const typed = change.text.join("");
    if (cm.state.completionActive || change.origin !== "+input") return;
    const word = cm.getTokenAt(cm.getCursor()).string;
    if (typed === "." || (/^\w$/.test(typed) && /^\w{2,}$/.test(word))) {
      cm.showHint({ hint: sqlHint, completeSingle: false });
    }
  });
  // SQLite's keywords (WITH RECURSIVE, …) when every datasource is SQLite; standard SQL otherwise.
  catalog.datasources().then((list) => {
    if (list.length && list.every((ds) => ds.engine === "sqlite")) editor.setOption("mode", "text/x-sqlite");
  }, () => {});
  runButton.addEventListener("click", () => run());
  cancelButton.addEventListener("click", () => cancel());
  ui = { root, editor, limit, runButton, cancelButton, status, error, results, history, select };
  select("results");
}

/** Signing out drops the page, its draft and its result: the next caller starts afresh. */
export function forgetSqlPage() {
  if (current && !current.done) current.controller.abort();
  ui?.root.remove();
  ui = null;
  current = null;
  sessionStorage.removeItem(DRAFT_KEY);
}

export function sqlView(params) {
  if (!ui) build();
  const wanted = params.get("sql");
  if (wanted !== null) {
    ui.editor.setValue(wanted);
    // The statement moves into the editor: the address goes back to plain #/sql.
    window.history.replaceState(null, "", "#/sql");
    if (params.get("run") === "1") setTimeout(() => run(), 0);
  }
  setTimeout(() => {
    ui.editor.refresh();
    ui.editor.focus();
  }, 0);
  return ui.root;
}

// ------------------------------------------------------------------ running --

function statementToRun() {
  const selected = ui.editor.getSelection();
  return (selected.trim() ? selected : ui.editor.getValue()).trim();
}

function setRunning(running) {
  ui.runButton.disabled = running;
  ui.cancelButton.disabled = !running;
}

async function run(sqlText = statementToRun()) {
  if (!sqlText || (current && !current.done)) return;
  ui.select("results");
  clearError();
  const query = {
    sql: sqlText, limit: Number(ui.limit.value), status: "submitting", startedAt: performance.now(),
    controller: new AbortController(), pages: [], page: 0, done: false,
  };
  current = query;
  setRunning(true);
  clear(ui.results);
  const ticker = setInterval(() => renderStatus(query), 100);
  renderStatus(query);
  try {
    const response = await request("/api/query", {
      method: "POST",
      body: { sql: sqlText, limit: query.limit },
      headers: { Prefer: "respond-async" },
      signal: query.controller.signal,
    });
    const body = await response.json();
    if (response.status === 202) {
      query.id = body.query_id;
      query.location = response.headers.get("Location") || `/api/query/${encodeURIComponent(body.query_id)}`;
      query.async = true;
      query.status = body.status || "queued";
      renderStatus(query);
      await follow(query);
    } else {
      // A server that answered at once: the whole result is here, paged on screen.
      query.id = body.query_id || response.headers.get("X-Query-Id");
      Object.assign(query, { status: "succeeded", columns: body.columns, allRows: body.rows,
        rowCount: body.row_count, truncated: body.truncated, elapsedMs: body.elapsed_ms });
      query.pages = [{ cursor: null }];
      showPage(query, 0);
    }
  } catch (error) {
    if (error.name === "AbortError") query.status = "cancelled";
    else if (error instanceof ApiError) {
      query.status = "failed";
      showError(error.problem);
    } else {
      query.status = "failed";
      showError({ title: "Network error", detail: error.message });
    }
  } finally {
    clearInterval(ticker);
    query.done = true;
    query.finishedAt = performance.now();
    if (current === query) {
      setRunning(false);
      renderStatus(query);
      if (query.status === "cancelled") {
        clear(ui.results).append(h("p", { class: "empty" }, "The query was cancelled: it stopped at the source and kept no result."));
      }
    }
  }
}

/** Poll the query's resource until it ends, then show its first page or its error. */
async function follow(query) {
  let wait = 150;
  for (;;) {
    const state = await getJson(query.location);
    Object.assign(query, {
      status: state.status, rowCount: state.row_count, truncated: state.truncated,
      elapsedMs: state.elapsed_ms,
    });
    renderStatus(query);
    if (TERMINAL.has(state.status)) {
      if (state.status === "succeeded") {
        query.pages = [{ cursor: null }];
        await loadPage(query, 0);
      } else if (state.status === "failed" && state.error) showError(state.error);
      return;
    }
    await sleep(wait);
    wait = Math.min(wait * 1.6, 2000);
  }
}

async function cancel() {
  const query = current;
  if (!query || query.done) return;
  if (query.async && query.location) {
    ui.cancelButton.disabled = true;
    try {
      await request(query.location, { method: "DELETE" });
    } catch (error) {
      toast(`Could not cancel: ${error.message}`, "error");
      ui.cancelButton.disabled = false;
    }
    // The poll sees the status change and ends.
  } else {
    // Without an id yet, dropping the request cancels it (the server stops on disconnect).
    query.controller.abort();
  }
}

// ------------------------------------------------------------------ results --

async function loadPage(query, index) {
  const page = query.pages[index];
  if (!page.rows) {
    const cursor = page.cursor ? `&cursor=${encodeURIComponent(page.cursor)}` : "";
    try {
      const body = await getJson(`${query.location}/results?limit=${PAGE_ROWS}${cursor}`);
      query.columns = body.columns;
      page.rows = body.rows;
      page.next = body.next_cursor;
      if (body.next_cursor && !query.pages[index + 1]) query.pages.push({ cursor: body.next_cursor });
    } catch (error) {
      if (error instanceof ApiError && error.status === 410) toast("This result has expired: run the query again.", "warn");
      else toast(error.message, "error");
      return;
    }
  }
  showPage(query, index);
}

function pageRows(query, index) {
  if (query.allRows) return query.allRows.slice(index * PAGE_ROWS, (index + 1) * PAGE_ROWS);
  return query.pages[index]?.rows || [];
}

function hasNext(query, index) {
  if (query.allRows) return (index + 1) * PAGE_ROWS < query.allRows.length;
  return Boolean(query.pages[index]?.next);
}

function cell(value) {
  if (value === null || value === undefined) return h("td", { class: "null" }, "NULL");
  if (typeof value === "number") return h("td", { class: "num" }, String(value));
  if (typeof value === "boolean") return h("td", { class: "bool" }, String(value));
  const text = typeof value === "object" ? JSON.stringify(value) : String(value);
  return h("td", { title: text.length > 60 ? text : null }, text);
}

function showPage(query, index) {
  if (current !== query) return;
  query.page = index;
  const rows = pageRows(query, index);
  const first = index * PAGE_ROWS;
  const columns = query.columns || [];
  const total = typeof query.rowCount === "number" ? query.rowCount : null;
  const range = rows.length ? `Rows ${count(first + 1)}–${count(first + rows.length)}${total !== null ? ` of ${count(total)}` : ""}` : "No rows";
  const go = (next) => () => (query.allRows ? showPage(query, next) : loadPage(query, next));
  const pager = h("div", { class: "pager row" },
    h("button", { type: "button", class: "page-previous", disabled: index === 0, on: { click: go(index - 1) } },
      h("span", { "aria-hidden": "true" }, "‹"), "Previous"),
    h("span", { class: "range", id: "result-range" }, range),
    h("button", { type: "button", class: "page-next", disabled: !hasNext(query, index), on: { click: go(index + 1) } },
      "Next", h("span", { "aria-hidden": "true" }, "›")),
    h("span", { class: "spacer" }),
    Object.entries(FORMATS).map(([format, info]) => h("button", {
      type: "button", class: "download", "data-format": format, on: { click: (event) => download(query, format, event.currentTarget) },
    }, `Download ${info.label}`)));
  const table = h("table", { class: "grid results-grid" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col", class: "rownum" }, h("span", { class: "visually-hidden" }, "Row")),
      columns.map((c) => h("th", { scope: "col", class: NUMERIC_TYPE.test(c.type) ? "num" : null },
        h("span", { class: "col-name" }, c.name), h("span", { class: "col-type" }, c.type))))),
    h("tbody", {}, rows.map((row, i) => h("tr", {}, h("td", { class: "rownum" }, String(first + i + 1)), row.map(cell)))));
  clear(ui.results).append(pager,
    h("div", { class: "table-wrap results-wrap", tabindex: "0", role: "region", "aria-label": "Query results" }, table));
}

// ---------------------------------------------------------------- downloads --

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The result in a streamed format, fetched with the token in the header (never the URL). */
async function download(query, format, button) {
  const info = FORMATS[format];
  button.disabled = true;
  try {
    const response = query.async
      ? await request(`${query.location}/results`, { accept: info.accept })
      : await request("/api/query", { method: "POST", body: { sql: query.sql, limit: query.limit }, accept: info.accept });
    const type = (response.headers.get("Content-Type") || "").split(";")[0].trim();
    if (type !== info.accept) throw new Error(`the server sent ${type || "no type"} instead of ${info.accept}`);
    const blob = await response.blob();
    if (format === "ndjson") {
      // A stream that failed half-way ends with {"error": problem}: that is not a file.
      const tail = (await blob.slice(Math.max(0, blob.size - 65536)).text()).trimEnd().split("\n").pop();
      const last = JSON.parse(tail || "{}");
      if (last.error) throw new ApiError(last.error.status || 500, last.error);
    }
    save(blob, `weaver-${query.id || "result"}.${info.extension}`);
    toast(`Downloaded ${info.label} (${count(blob.size)} bytes)`, "success");
  } catch (error) {
    toast(`Download failed: ${error.message}`, "error", 8);
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------ status, errors --

function renderStatus(query) {
  if (current !== query) return;
  const live = query.done ? query.finishedAt - query.startedAt : performance.now() - query.startedAt;
  const elapsed = typeof query.elapsedMs === "number" && TERMINAL.has(query.status) ? query.elapsedMs : live;
  const parts = [h("span", { class: ["badge", "status", query.status], "data-status": query.status }, query.status)];
  parts.push(h("span", { class: "elapsed", "data-elapsed": "" }, duration(elapsed)));
  if (typeof query.rowCount === "number") {
    parts.push(h("span", { class: "row-count" }, plural(query.rowCount, "row")));
    if (query.truncated) parts.push(h("span", { class: "warn-text" }, `stopped at the row limit (${count(query.limit)})`));
  }
  if (query.id) parts.push(h("span", { class: "muted small query-id", title: "query id" }, query.id));
  clear(ui.status).append(...parts);
}

let errorMark = null;

function clearErrorMark() {
  if (errorMark) errorMark.clear();
  errorMark = null;
}

function clearError() {
  clearErrorMark();
  ui.error.hidden = true;
  clear(ui.error);
}

/** The problem's detail, and where the parser stopped when it said so. */
function showError(problem) {
  const detail = problem.detail || problem.title || "the query failed";
  const body = [h("strong", {}, problem.title || "Error", problem.status ? ` (${problem.status})` : ""), h("p", { class: "detail" }, detail)];
  const position = PARSE_POSITION.exec(detail);
  if (position) {
    const line = Number(position[1]) - 1;
    const column = Number(position[2]);
    const near = position[4];
    const text = ui.editor.getLine(line) ?? "";
    // sqlglot's column is where the offending token ends; mark the token itself.
    let start = column - 1;
    if (near && !near.endsWith("…") && text.slice(column - near.length, column) === near) start = column - near.length;
    clearErrorMark();
    errorMark = ui.editor.markText({ line, ch: Math.max(0, start) }, { line, ch: Math.max(start + 1, column) }, { className: "cm-error-mark" });
    body.push(h("button", {
      type: "button", class: "link-button", id: "error-position",
      on: { click: () => { ui.editor.focus(); ui.editor.setCursor({ line, ch: Math.max(0, start) }); } },
    }, `Go to line ${line + 1}, column ${column}`));
  }
  if (problem.request_id) body.push(h("p", { class: "muted small" }, `request ${problem.request_id}`));
  clear(ui.error).append(...body);
  ui.error.hidden = false;
}

// ------------------------------------------------------------------ history --

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied to the clipboard", "success");
  } catch {
    toast("The browser refused the clipboard: select the text and copy it", "warn");
  }
}

function historyItem(entry) {
  const actions = [
    h("button", { type: "button", on: { click: () => { ui.editor.setValue(entry.sql); ui.select("results"); ui.editor.focus(); } } }, "Edit"),
    h("button", { type: "button", class: "rerun", on: { click: () => { ui.editor.setValue(entry.sql); run(entry.sql); } } }, "Run again"),
    h("button", { type: "button", on: { click: () => copy(entry.sql) } }, "Copy"),
  ];
  return h("li", { class: "history-item", "data-query-id": entry.query_id },
    h("div", { class: "history-meta" },
      h("span", { class: ["badge", "status", entry.status] }, entry.status),
      timeAgo(entry.submitted_at),
      typeof entry.elapsed_ms === "number" ? h("span", {}, duration(entry.elapsed_ms)) : null,
      typeof entry.row_count === "number" ? h("span", {}, plural(entry.row_count, "row")) : null,
      entry.via ? h("span", { class: "muted small" }, `via ${entry.via}`) : null,
      session.isAdmin() && entry.sub ? h("span", { class: "muted small" }, `by ${entry.sub}`) : null),
    h("pre", { class: "history-sql" }, entry.sql),
    entry.error ? h("p", { class: "error small" }, entry.error.detail || entry.error.title) : null,
    h("div", { class: "row" }, actions));
}

async function showHistory(panel, cursor = null) {
  if (!cursor) clear(panel).append(h("p", { class: "muted" }, "Loading history…"));
  let page;
  try {
    page = await getJson(`/api/query/history?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
  } catch (error) {
    const missing = error instanceof ApiError && (error.status === 404 || error.status === 405);
    clear(panel).append(h("p", { class: "muted" }, missing ? "This server keeps no query history." : error.message));
    return;
  }
  if (!cursor) clear(panel);
  let list = panel.querySelector("ol.history-list");
  if (!list) {
    list = h("ol", { class: "history-list", "aria-label": "Recent queries, newest first" });
    panel.append(h("div", { class: "row" },
      h("h2", { class: "small-title" }, "Recent queries"),
      h("button", { type: "button", on: { click: () => showHistory(panel) } }, "Refresh")), list);
  }
  panel.querySelector(".more")?.remove();
  if (!page.items.length && !cursor) list.append(h("li", { class: "muted" }, "No queries yet."));
  list.append(...page.items.map(historyItem));
  if (page.next_cursor) {
    panel.append(h("button", { type: "button", class: "more", on: { click: () => showHistory(panel, page.next_cursor) } }, "Older queries"));
  }
}
