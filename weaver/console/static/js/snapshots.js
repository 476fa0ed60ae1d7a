// A datasource's snapshots (one per sync) and what changed between two of them.

import * as catalog from "./catalog.js";
import { ApiError } from "./api.js";
import { count, h, href, plural, timeAgo, when } from "./dom.js";
import { breadcrumbs } from "./catalog-views.js";

function snapshotLabel(snapshot) {
  return `${when(snapshot.created_at)} · ${plural(snapshot.tables, "table")}, ${plural(snapshot.columns, "column")}`;
}

function diffView(diff, from, to) {
  const changes = diff.added_tables.length + diff.removed_tables.length + diff.changed_tables.length;
  const summary = h("p", { class: "diff-summary" }, changes
    ? `${plural(diff.added_tables.length, "table")} added, ${plural(diff.removed_tables.length, "table")} removed, ` +
      `${plural(diff.changed_tables.length, "table")} changed`
    : "No difference: the two snapshots describe the same schema.");
  const list = h("ul", { class: "diff" });
  for (const table of diff.added_tables) list.append(h("li", { class: "added" }, h("span", { class: "sign", "aria-hidden": "true" }, "+"), h("span", { class: "visually-hidden" }, "added table "), h("code", {}, table)));
  for (const table of diff.removed_tables) list.append(h("li", { class: "removed" }, h("span", { class: "sign", "aria-hidden": "true" }, "−"), h("span", { class: "visually-hidden" }, "removed table "), h("code", {}, table)));
  for (const change of diff.changed_tables) {
    const inner = h("ul", { class: "diff columns" });
    for (const column of change.added_columns) inner.append(h("li", { class: "added" }, h("span", { class: "sign", "aria-hidden": "true" }, "+"), h("span", { class: "visually-hidden" }, "added column "), h("code", {}, column)));
    for (const column of change.removed_columns) inner.append(h("li", { class: "removed" }, h("span", { class: "sign", "aria-hidden": "true" }, "−"), h("span", { class: "visually-hidden" }, "removed column "), h("code", {}, column)));
    for (const column of change.changed_columns) {
      inner.append(h("li", { class: "changed" }, h("span", { class: "sign", "aria-hidden": "true" }, "~"), h("span", { class: "visually-hidden" }, "changed column "),
        h("code", {}, column.column), ": ", h("del", {}, column.before), " → ", h("ins", {}, column.after)));
    }
    list.append(h("li", { class: "changed" }, h("span", { class: "sign", "aria-hidden": "true" }, "~"), h("span", { class: "visually-hidden" }, "changed table "), h("code", {}, change.table), inner));
  }
  return h("section", { class: "card diff-card", "aria-labelledby": "diff-title" },
    h("h2", { id: "diff-title" }, "Changes"),
    h("p", { class: "muted small" }, "From ", timeAgo(from.created_at), " to ", timeAgo(to.created_at), "."),
    summary, changes ? list : null);
}

export async function snapshotsView(ds, params) {
  const items = await catalog.snapshots(ds);
  if (!items) throw new ApiError(404, { detail: `datasource '${ds}' not found` });
  const page = h("div", { class: "page" },
    breadcrumbs(["Catalog", "#/catalog"], [ds, href("catalog", ds)], ["Snapshots"]),
    h("h1", {}, `Snapshots of ${ds}`),
    h("p", { class: "muted" }, "Each sync records the schema as it was. Pick two to see what changed."));
  if (items.length === 0) {
    page.append(h("div", { class: "empty" }, h("p", {}, "No snapshots yet: sync the datasource first.")));
    return page;
  }
  // Default: the newest against the one before it.
  const toId = params.get("to") || items[0].id;
  const fromId = params.get("from") || (items[1] || items[0]).id;
  const picker = (name, label, selected) => h("div", { class: "field" },
    h("label", { for: `snapshot-${name}` }, label),
    h("select", { id: `snapshot-${name}`, name }, items.map((snapshot) =>
      h("option", { value: snapshot.id, selected: snapshot.id === selected }, snapshotLabel(snapshot)))));
  const form = h("form", { class: "row compare-form" },
    picker("from", "From (older)", fromId), picker("to", "To (newer)", toId),
    h("button", { type: "submit", class: "primary" }, "Compare"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    location.hash = `${href("snapshots", ds)}?from=${encodeURIComponent(data.get("from"))}&to=${encodeURIComponent(data.get("to"))}`;
  });
  if (items.length > 1) page.append(form);

  const from = items.find((s) => s.id === fromId);
  const to = items.find((s) => s.id === toId);
  if (items.length < 2) {
    page.append(h("p", { class: "empty" }, "Only one snapshot so far: sync again after the schema changes to compare."));
  } else if (from && to) {
    page.append(diffView(await catalog.diff(ds, toId, fromId), from, to));
  }

  page.append(h("section", { "aria-labelledby": "all-snapshots" },
    h("h2", { id: "all-snapshots" }, `All snapshots (${items.length})`),
    h("div", { class: "table-wrap" }, h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Taken"), h("th", { scope: "col", class: "num" }, "Tables"),
        h("th", { scope: "col", class: "num" }, "Columns"), h("th", { scope: "col" }, "Id"))),
      h("tbody", {}, items.map((s) => h("tr", {},
        h("td", {}, timeAgo(s.created_at)), h("td", { class: "num" }, count(s.tables)),
        h("td", { class: "num" }, count(s.columns)), h("td", { class: "muted small mono" }, s.id))))))));
  return page;
}
