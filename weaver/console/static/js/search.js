// Search across the catalog: tables, columns and glossary terms at once.

import * as catalog from "./catalog.js";
import { h, href } from "./dom.js";
import { termCard } from "./glossary.js";

function section(id, title, items, render) {
  return h("section", { "aria-labelledby": id, class: "search-section" },
    h("h2", { id }, `${title} (${items.length})`),
    items.length ? h("ul", { class: "search-results" }, items.map((item) => h("li", {}, render(item))))
      : h("p", { class: "muted" }, "None."));
}

export async function searchView(params) {
  const q = (params.get("q") || "").trim();
  if (!q) return h("div", { class: "page" }, h("h1", {}, "Search"), h("p", { class: "muted" }, "Type in the search box above."));
  const [tables, columns, terms] = await Promise.all([
    catalog.search(q, "table"), catalog.search(q, "column"), catalog.searchGlossary(q)]);
  return h("div", { class: "page" },
    h("h1", {}, `Search: “${q}”`),
    section("found-tables", "Tables", tables, (hit) =>
      h("a", { href: href("catalog", hit.datasource, hit.schema, hit.table) }, `${hit.datasource}.${hit.schema}.${hit.table}`)),
    section("found-columns", "Columns", columns, (hit) => [
      h("a", { href: href("catalog", hit.datasource, hit.schema, hit.table), class: "column-hit" },
        `${hit.datasource}.${hit.schema}.${hit.table}.`, h("strong", {}, hit.column)),
      hit.data_type ? h("span", { class: "type muted" }, ` ${hit.data_type}`) : null]),
    h("section", { "aria-labelledby": "found-terms", class: "search-section" },
      h("h2", { id: "found-terms" }, `Glossary terms (${terms.length})`),
      terms.length ? h("div", { class: "cards" }, terms.map(termCard)) : h("p", { class: "muted" }, "None.")));
}
