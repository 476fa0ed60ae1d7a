// The business glossary: terms, their synonyms and the columns they name.

import * as catalog from "./catalog.js";
import { h, href } from "./dom.js";

/** A link to the table of `ds.schema.table.column`. */
export function columnLink(path) {
  const [ds, schema, table, ...rest] = path.split(".");
  return h("a", { class: "chip mono", href: href("catalog", ds, schema, table) }, `${ds}.${schema}.${table}.${rest.join(".")}`);
}

export function termCard(term) {
  return h("article", { class: "card term", "data-term": term.term },
    h("h2", {}, term.term),
    term.synonyms.length ? h("p", { class: "muted small" }, "Also: ", term.synonyms.join(", ")) : null,
    h("p", {}, term.definition),
    term.columns.length ? h("div", { class: "chips", "aria-label": `Columns named by ${term.term}` }, term.columns.map(columnLink)) : null);
}

export async function glossaryView(params) {
  const q = params.get("q") || "";
  const terms = q ? await catalog.searchGlossary(q) : await catalog.glossary();
  const input = h("input", { id: "glossary-q", type: "search", name: "q", value: q, placeholder: "term or synonym" });
  const form = h("form", { class: "row", role: "search", "aria-label": "Glossary" },
    h("label", { for: "glossary-q" }, "Filter"), input,
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = input.value.trim() ? `#/glossary?q=${encodeURIComponent(input.value.trim())}` : "#/glossary";
  });
  return h("div", { class: "page" },
    h("h1", {}, "Glossary"),
    h("p", { class: "muted" }, "Business terms of this tenant and the columns they name."),
    form,
    terms.length
      ? h("div", { class: "cards" }, terms.map(termCard))
      : h("div", { class: "empty" }, h("p", {}, q ? `No term matches “${q}”.` : "No glossary terms yet.")));
}
