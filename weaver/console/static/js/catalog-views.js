// Catalog pages: every datasource, one datasource, one schema (with its diagram), one table.

import * as catalog from "./catalog.js";
import * as session from "./session.js";
import { ApiError } from "./api.js";
import { count, duration, h, href, plural, timeAgo, toast } from "./dom.js";
import { erDiagram } from "./erd.js";

export function breadcrumbs(...items) {
  return h("nav", { class: "breadcrumbs", "aria-label": "Breadcrumb" },
    h("ol", {}, items.map(([label, target], index) =>
      h("li", {}, index === items.length - 1 || !target
        ? h("span", { "aria-current": index === items.length - 1 ? "page" : null }, label)
        : h("a", { href: target }, label)))));
}

/** A button that runs an action once at a time and says how it went. */
export function actionButton(label, busyLabel, action, { primary = false } = {}) {
  const button = h("button", { type: "button", class: primary ? "primary" : null }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = busyLabel;
    try {
      await action();
    } catch (error) {
      toast(error.message, "error", 8);
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  });
  return button;
}

/** Sync and refresh-statistics buttons, for editors and admins only (the server checks). */
function writeActions(ds, { primary = false } = {}) {
  if (!session.canWrite()) return [];
  return [
    actionButton("Sync catalog", "Syncing…", async () => {
      const result = await catalog.sync(ds);
      toast(`Synced ${ds}: ${plural(result.tables, "table")}, ${plural(result.columns, "column")}, ` +
        `${plural(result.foreign_keys, "foreign key")} in ${duration(result.elapsed_ms)}`, "success");
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    }, { primary }),
    actionButton("Refresh statistics", "Computing…", async () => {
      const result = await catalog.refreshStatistics(ds);
      toast(`Statistics of ${ds}: ${plural(result.tables.length, "table")} measured`, "success");
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    }),
  ];
}

/** "Synced 3 minutes ago", filled in when the newest snapshot is known. */
function syncState(ds) {
  const node = h("span", { class: "sync-state muted" }, "…");
  catalog.lastSync(ds).then(
    (snapshot) => node.replaceChildren(...(snapshot
      ? [h("span", { class: "dot ok", "aria-hidden": "true" }), "Synced ", timeAgo(snapshot.created_at),
        ` · ${plural(snapshot.tables, "table")}, ${plural(snapshot.columns, "column")}`]
      : [h("span", { class: "dot off", "aria-hidden": "true" }), "Not synced yet"])),
    () => node.replaceChildren("sync state unknown"));
  return node;
}

async function datasourceOr404(name) {
  const found = (await catalog.datasources()).find((ds) => ds.name === name);
  if (!found) throw new ApiError(404, { detail: `datasource '${name}' not found` });
  return found;
}

const PREVIEW_TABLES = 8;

/** The first tables of a synced datasource, as links; an invitation to sync otherwise. */
function tablePreview(ds) {
  const node = h("div", { class: "chips table-preview" });
  (async () => {
    const schemas = await catalog.schemas(ds);
    if (!schemas) {
      node.append(h("p", { class: "muted small" }, session.canWrite()
        ? "Sync the catalog to browse its tables and keys."
        : "An editor can sync its catalog."));
      return;
    }
    const links = [];
    for (const schema of schemas) {
      for (const table of (await catalog.tables(ds, schema.name)) || []) {
        links.push(h("a", { class: "chip mono", href: href("catalog", ds, schema.name, table.name) },
          schemas.length > 1 ? `${schema.name}.${table.name}` : table.name));
      }
      if (links.length > PREVIEW_TABLES) break;
    }
    node.append(...links.slice(0, PREVIEW_TABLES));
    if (links.length > PREVIEW_TABLES) node.append(h("a", { class: "chip", href: href("catalog", ds) }, "more…"));
  })().catch(() => {});
  return node;
}

export async function catalogHome() {
  const items = await catalog.datasources();
  const claims = session.claims();
  const cards = items.map((ds) => h("article", { class: "card datasource-card" },
    h("header", {},
      h("h2", {}, h("a", { href: href("catalog", ds.name) }, ds.name)),
      h("span", { class: "badge engine" }, ds.engine)),
    h("p", { class: "description" }, ds.description || h("span", { class: "muted" }, "No description")),
    h("p", {}, syncState(ds.name)),
    tablePreview(ds.name),
    h("div", { class: "row" },
      h("a", { class: "button", href: href("catalog", ds.name) }, "Browse"),
      h("a", { class: "button", href: `#/sql?sql=${encodeURIComponent(`SELECT *\nFROM ${ds.name}.`)}` }, "Query"),
      h("a", { class: "button", href: href("snapshots", ds.name) }, "Snapshots"),
      writeActions(ds.name))));
  return h("div", { class: "page" },
    h("h1", {}, "Catalog"),
    h("p", { class: "muted" }, `Tenant ${claims.tenant_id}: ${plural(items.length, "datasource")}.`),
    items.length
      ? h("div", { class: "cards" }, cards)
      : h("div", { class: "empty" },
        h("p", {}, "This tenant has no datasources yet."),
        h("p", { class: "muted" }, "Register one with POST /api/datasources (editors), then sync its catalog here.")));
}

export async function datasourceView(name) {
  const ds = await datasourceOr404(name);
  const [schemas, stats] = await Promise.all([catalog.schemas(name), catalog.statistics(name)]);
  const body = [];
  if (!schemas) {
    body.push(h("div", { class: "empty" },
      h("p", {}, "The catalog of this datasource has not been synced yet."),
      session.canWrite() ? h("p", { class: "muted" }, "Sync it to see its schemas, tables and keys.")
        : h("p", { class: "muted" }, "An editor can sync it.")));
  } else {
    body.push(h("section", { "aria-labelledby": "schemas-title" },
      h("h2", { id: "schemas-title" }, "Schemas"),
      h("div", { class: "table-wrap" }, h("table", { class: "grid" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Schema"), h("th", { scope: "col", class: "num" }, "Tables"))),
        h("tbody", {}, schemas.map((schema) => h("tr", {},
          h("td", {}, h("a", { href: href("catalog", name, schema.name) }, schema.name)),
          h("td", { class: "num" }, count(schema.table_count)))))))));
  }
  body.push(h("section", { "aria-labelledby": "stats-title" },
    h("h2", { id: "stats-title" }, "Statistics"),
    stats
      ? h("p", {}, `${plural(stats.tables.length, "table")} measured `, timeAgo(stats.computed_at), ".")
      : h("p", { class: "muted" }, "No statistics computed yet.")));
  return h("div", { class: "page" },
    breadcrumbs(["Catalog", "#/catalog"], [name]),
    h("div", { class: "title-row" },
      h("h1", {}, name), h("span", { class: "badge engine" }, ds.engine)),
    h("p", { class: "description" }, ds.description || ""),
    h("p", {}, syncState(name)),
    h("div", { class: "row" },
      h("a", { class: "button", href: href("snapshots", name) }, "Snapshots and changes"),
      writeActions(name, { primary: !schemas })),
    body);
}

export async function schemaView(ds, schema) {
  await datasourceOr404(ds);
  const [listed, stats] = await Promise.all([catalog.tables(ds, schema), catalog.statistics(ds)]);
  if (!listed) throw new ApiError(404, { detail: `schema '${schema}' of '${ds}' not found (has it been synced?)` });
  const rowsOf = (name) => listed.find((t) => t.name === name)?.row_count
    ?? stats?.tables.find((t) => t.schema === schema && t.table === name)?.row_count;
  const tables = await catalog.schemaTables(ds, schema);
  return h("div", { class: "page" },
    breadcrumbs(["Catalog", "#/catalog"], [ds, href("catalog", ds)], [schema]),
    h("h1", {}, `${ds}.${schema}`),
    h("section", { "aria-labelledby": "tables-title" },
      h("h2", { id: "tables-title" }, `Tables (${listed.length})`),
      h("div", { class: "table-wrap" }, h("table", { class: "grid" },
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Table"), h("th", { scope: "col", class: "num" }, "Columns"),
          h("th", { scope: "col", class: "num" }, "Rows"), h("th", { scope: "col" }, "Foreign keys"))),
        h("tbody", {}, listed.map((t) => {
          const detail = tables.find((x) => x.name === t.name);
          const keys = detail ? detail.columns.filter((c) => c.references).map((c) => c.references.table) : [];
          return h("tr", {},
            h("td", {}, h("a", { href: href("catalog", ds, schema, t.name) }, t.name)),
            h("td", { class: "num" }, count(t.column_count)),
            h("td", { class: "num" }, count(rowsOf(t.name))),
            h("td", { class: "muted" }, keys.length ? `→ ${[...new Set(keys)].join(", ")}` : ""));
        }))))),
    h("section", { "aria-labelledby": "erd-title" },
      h("h2", { id: "erd-title" }, "Entity-relationship diagram"),
      erDiagram(ds, schema, tables)));
}

function statCells(stat) {
  if (!stat) return [h("td", { class: "num muted" }, "–"), h("td", { class: "num muted" }, "–"), h("td", { class: "muted" }, "–")];
  const range = stat.min === undefined || stat.min === null ? "" : `${stat.min} … ${stat.max}`;
  return [
    h("td", { class: "num" }, count(stat.null_count)),
    h("td", { class: "num" }, count(stat.distinct_count)),
    h("td", { class: "range", title: range }, range),
  ];
}

export async function tableView(ds, schema, name) {
  await datasourceOr404(ds);
  const [detail, stats, terms] = await Promise.all([
    catalog.table(ds, schema, name), catalog.statistics(ds), catalog.termsByColumn()]);
  if (!detail) throw new ApiError(404, { detail: `table '${schema}.${name}' of '${ds}' not found (has it been synced?)` });
  const tableStats = stats?.tables.find((t) => t.schema === schema && t.table === name);
  const statOf = (column) => tableStats?.columns.find((c) => c.name === column);
  const qualified = schema === "main" ? `${ds}.${name}` : `${ds}.${schema}.${name}`;
  const query = `SELECT *\nFROM ${qualified}\nLIMIT 100`;

  const rows = detail.columns.map((column) => {
    const ref = column.references;
    const linked = terms.get(`${ds}.${schema}.${name}.${column.name}`) || [];
    return h("tr", { "data-column": column.name },
      h("th", { scope: "row" }, h("span", { class: "column-name" }, column.name),
        column.primary_key ? h("span", { class: "badge key", title: "primary key" }, "PK") : null,
        ref ? h("span", { class: "badge fk", title: "foreign key" }, "FK") : null),
      h("td", { class: "type" }, column.data_type),
      h("td", {}, column.nullable ? h("span", { class: "muted" }, "null") : "not null"),
      h("td", {}, ref ? h("a", { href: href("catalog", ds, ref.schema, ref.table), class: "fk-link" },
        `→ ${ref.schema === schema ? "" : ref.schema + "."}${ref.table}.${ref.column}`) : ""),
      statCells(statOf(column.name)),
      h("td", {}, linked.map((term) => h("a", {
        class: "chip", href: `#/glossary?q=${encodeURIComponent(term.term)}`, title: term.definition,
      }, term.term))));
  });

  const referencedBy = detail.referenced_by || [];
  return h("div", { class: "page" },
    breadcrumbs(["Catalog", "#/catalog"], [ds, href("catalog", ds)], [schema, href("catalog", ds, schema)], [name]),
    h("div", { class: "title-row" }, h("h1", {}, `${ds}.${schema}.${name}`),
      tableStats ? h("span", { class: "badge" }, plural(tableStats.row_count, "row")) : null),
    h("div", { class: "row" },
      h("a", { class: "button primary", href: `#/sql?sql=${encodeURIComponent(query)}&run=1` }, "Query this table"),
      h("a", { class: "button", href: href("catalog", ds, schema) }, "Diagram of the schema")),
    h("section", { "aria-labelledby": "columns-title" },
      h("h2", { id: "columns-title" }, `Columns (${detail.columns.length})`),
      stats ? h("p", { class: "muted small" }, "Statistics computed ", timeAgo(stats.computed_at), ".")
        : h("p", { class: "muted small" }, "No statistics yet", session.canWrite() ? ": refresh them from the datasource page." : "."),
      h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Columns" }, h("table", { class: "grid columns" },
        h("thead", {}, h("tr", {},
          ["Column", "Type", "Nullable", "References", "Nulls", "Distinct", "Min … max", "Glossary"].map((label, i) =>
            h("th", { scope: "col", class: i === 4 || i === 5 ? "num" : null }, label)))),
        h("tbody", {}, rows)))),
    h("section", { "aria-labelledby": "refs-title" },
      h("h2", { id: "refs-title" }, `Referenced by (${referencedBy.length})`),
      referencedBy.length
        ? h("ul", { class: "referenced-by" }, referencedBy.map((r) => h("li", {},
          h("a", { href: href("catalog", ds, r.schema, r.table) }, `${r.schema === schema ? "" : r.schema + "."}${r.table}.${r.column}`),
          ` → ${name}.${r.referenced_column}`)))
        : h("p", { class: "muted" }, "No foreign key points at this table.")));
}
