// What the console knows of the tenant's catalog, fetched once and kept until a sync or a
// refresh changes it. Every read goes through the public metadata API.

import { ApiError, allItems, getJson, metadataPath, request } from "./api.js";

const cache = new Map();
const listeners = new Set();

function cached(key, load) {
  if (!cache.has(key)) {
    const pending = load().catch((error) => {
      cache.delete(key);
      throw error;
    });
    cache.set(key, pending);
  }
  return cache.get(key);
}

/** `null` for a 404 (not synced, no statistics yet); other errors are thrown. */
async function orNull(promise) {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

export const datasources = () => cached("datasources", () => allItems("/api/datasources"));

export const schemas = (ds) => cached(`schemas:${ds}`, () => orNull(allItems(metadataPath(ds, "schemas"))));

export const tables = (ds, schema) =>
  cached(`tables:${ds}:${schema}`, () => orNull(allItems(metadataPath(ds, "schemas", schema, "tables"))));

export const table = (ds, schema, name) =>
  cached(`table:${ds}:${schema}:${name}`, () => orNull(getJson(metadataPath(ds, "schemas", schema, "tables", name))));

export const statistics = (ds) => cached(`stats:${ds}`, () => orNull(getJson(metadataPath(ds, "stats"))));

export const snapshots = (ds) => cached(`snapshots:${ds}`, () => orNull(allItems(metadataPath(ds, "snapshots"))));

/** The newest snapshot says when the datasource was last synced; `null` if never. */
export const lastSync = (ds) =>
  cached(`last-sync:${ds}`, async () => {
    const page = await orNull(getJson(`${metadataPath(ds, "snapshots")}?limit=1`));
    return page?.items?.[0] ?? null;
  });

export const glossary = () => cached("glossary", () => allItems("/api/v1/metadata/glossary"));

/** Every table of a schema with its columns, a few requests at a time. */
export async function schemaTables(ds, schema) {
  const listed = (await tables(ds, schema)) || [];
  const out = new Array(listed.length);
  let next = 0;
  async function worker() {
    while (next < listed.length) {
      const index = next++;
      out[index] = await table(ds, schema, listed[index].name);
    }
  }
  await Promise.all(Array.from({ length: Math.min(4, listed.length) }, worker));
  return out.filter(Boolean);
}

/** Glossary terms by the column they name, `ds.schema.table.column`. */
export async function termsByColumn() {
  const byColumn = new Map();
  for (const term of await glossary()) {
    for (const column of term.columns || []) {
      if (!byColumn.has(column)) byColumn.set(column, []);
      byColumn.get(column).push(term);
    }
  }
  return byColumn;
}

export function forget(ds = null) {
  for (const key of [...cache.keys()]) {
    if (ds === null || key.split(":")[1] === ds || key === "datasources") cache.delete(key);
  }
  listeners.forEach((listener) => listener(ds));
}

/** Forget everything without telling anyone: a new caller starts from nothing. */
export function reset() {
  cache.clear();
}

export function onChange(listener) {
  listeners.add(listener);
}

export async function sync(ds) {
  const result = await (await request(metadataPath(ds, "sync"), { method: "POST" })).json();
  forget(ds);
  return result;
}

export async function refreshStatistics(ds) {
  const result = await (await request(metadataPath(ds, "stats", "refresh"), { method: "POST" })).json();
  cache.delete(`stats:${ds}`);
  cache.set(`stats:${ds}`, Promise.resolve(result));
  listeners.forEach((listener) => listener(ds));
  return result;
}

export async function search(q, kind) {
  const page = await getJson(`/api/v1/metadata/search?q=${encodeURIComponent(q)}&kind=${kind}&limit=100`);
  return page.items;
}

export async function searchGlossary(q) {
  const page = await getJson(`/api/v1/metadata/glossary?q=${encodeURIComponent(q)}&limit=100`);
  return page.items;
}

export function diff(ds, snapshotId, against) {
  return getJson(`${metadataPath(ds, "snapshots", snapshotId, "diff")}?against=${encodeURIComponent(against)}`);
}
