// Completion of datasource, schema, table and column names from the catalog, for
// CodeMirror's show-hint. Table lists are loaded once; a table's columns when first needed.

import * as catalog from "./catalog.js";

const KEYWORDS = (
  "SELECT FROM WHERE JOIN LEFT INNER RIGHT FULL OUTER CROSS ON USING GROUP BY ORDER HAVING LIMIT " +
  "OFFSET AS DISTINCT AND OR NOT NULL IS IN BETWEEN LIKE CASE WHEN THEN ELSE END WITH RECURSIVE " +
  "UNION ALL EXCEPT INTERSECT EXISTS ASC DESC COUNT SUM AVG MIN MAX CAST COALESCE ROUND LOWER UPPER"
).split(" ");
const NOT_ALIASES = new Set(KEYWORDS.map((k) => k.toLowerCase()));
const IDENT = "[A-Za-z_][\\w$]*";
const TABLE_REFERENCE = new RegExp(`\\b(?:from|join)\\s+(${IDENT}(?:\\.${IDENT}){1,2})(?:\\s+(?:as\\s+)?(${IDENT}))?`, "gi");

let names = null;

/** Datasource → schema → table names, loaded once per sign-in and after each sync. */
function tableNames() {
  names = names || (async () => {
    const tree = new Map();
    for (const ds of await catalog.datasources()) {
      const schemas = new Map();
      tree.set(ds.name, schemas);
      for (const schema of (await catalog.schemas(ds.name).catch(() => null)) || []) {
        const tables = (await catalog.tables(ds.name, schema.name).catch(() => null)) || [];
        schemas.set(schema.name, tables.map((t) => t.name));
      }
    }
    return tree;
  })().catch((error) => {
    names = null;
    throw error;
  });
  return names;
}
catalog.onChange(() => (names = null));

/** `ds.table` or `ds.schema.table` to its place in the catalog, or null. */
function resolve(tree, parts) {
  const [ds, ...rest] = parts.map((p) => p.toLowerCase());
  const schemas = [...tree.entries()].find(([name]) => name.toLowerCase() === ds)?.[1];
  if (!schemas) return null;
  const datasource = [...tree.keys()].find((name) => name.toLowerCase() === ds);
  for (const [schema, tables] of schemas) {
    if (rest.length === 2 && schema.toLowerCase() !== rest[0]) continue;
    const table = tables.find((t) => t.toLowerCase() === rest[rest.length - 1]);
    if (table) return { ds: datasource, schema, table };
  }
  return null;
}

/** Tables the statement names, with their aliases. */
function referenced(tree, text) {
  const found = [];
  for (const match of text.matchAll(TABLE_REFERENCE)) {
    const place = resolve(tree, match[1].split("."));
    if (!place) continue;
    const alias = match[2] && !NOT_ALIASES.has(match[2].toLowerCase()) ? match[2] : null;
    found.push({ ...place, alias });
  }
  return found;
}

async function columnsOf(place) {
  const table = await catalog.table(place.ds, place.schema, place.table).catch(() => null);
  return table ? table.columns : [];
}

function item(text, kind, detail = "") {
  return {
    text,
    kind,
    className: `hint-${kind}`,
    render(element) {
      element.append(
        Object.assign(document.createElement("span"), { className: "hint-text", textContent: text }),
        Object.assign(document.createElement("span"), { className: "hint-kind", textContent: detail || kind }));
    },
  };
}

const columnItems = (columns, where) => columns.map((c) => item(c.name, "column", `${c.data_type.toLowerCase()} · ${where}`));

/** Candidates after `parts.` that start with `prefix` (case-insensitive). */
export async function candidates(text, parts, prefix) {
  const tree = await tableNames();
  const inStatement = referenced(tree, text);
  let list = [];
  const lower = parts.map((p) => p.toLowerCase());
  const ds = [...tree.keys()].find((name) => name.toLowerCase() === lower[0]);
  if (parts.length === 0) {
    list.push(...[...tree.keys()].map((name) => item(name, "datasource")));
    for (const place of inStatement) {
      if (place.alias) list.push(item(place.alias, "alias", `${place.ds}.${place.table}`));
      list.push(...columnItems(await columnsOf(place), place.table));
    }
    list.push(...KEYWORDS.map((k) => item(k, "keyword")));
  } else {
    const byAlias = inStatement.find((p) => (p.alias || p.table).toLowerCase() === lower[0]);
    if (parts.length === 1 && byAlias && !ds) {
      list = columnItems(await columnsOf(byAlias), byAlias.table);
    } else if (parts.length === 1 && ds) {
      for (const [schema, tables] of tree.get(ds)) {
        list.push(item(schema, "schema", `${tables.length} tables`));
        list.push(...tables.map((t) => item(t, "table", schema)));
      }
    } else if (parts.length === 2 && ds && tree.get(ds).has(parts[1])) {
      list = tree.get(ds).get(parts[1]).map((t) => item(t, "table", parts[1]));
    } else if (ds) {
      const place = resolve(tree, parts);
      if (place) list = columnItems(await columnsOf(place), place.table);
    }
  }
  const wanted = prefix.toLowerCase();
  const seen = new Set();
  return list.filter((candidate) => {
    const key = `${candidate.kind}:${candidate.text}`;
    if (seen.has(key) || !candidate.text.toLowerCase().startsWith(wanted)) return false;
    seen.add(key);
    return true;
  });
}

/** CodeMirror's asynchronous hint source. */
export function sqlHint(cm, callback) {
  const cursor = cm.getCursor();
  const before = cm.getLine(cursor.line).slice(0, cursor.ch);
  const match = new RegExp(`((?:${IDENT}\\.)*)(${IDENT})?$`).exec(before);
  const parts = match[1] ? match[1].split(".").filter(Boolean) : [];
  const prefix = match[2] || "";
  candidates(cm.getValue(), parts, prefix).then(
    (list) => callback({ list, from: CodeMirror.Pos(cursor.line, cursor.ch - prefix.length), to: cursor }),
    () => callback(null));
}
sqlHint.async = true;
