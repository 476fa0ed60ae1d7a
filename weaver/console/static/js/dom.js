// Building the page from data: every text goes in as text, never as markup, so nothing a
// datasource or a tenant wrote can become script. No inline styles either (the CSP has none).

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(node, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "text") node.textContent = value;
    else if (key === "on") for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") throw new Error("inline styles are refused by the page's CSP");
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element: h("a", {href: "#/x", class: "link"}, "text", otherNode). */
export function h(tag, props = {}, ...children) {
  return apply(document.createElement(tag), props, children);
}

/** An SVG element, the same way. */
export function s(tag, props = {}, ...children) {
  return apply(document.createElementNS(SVG_NS, tag), props, children);
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function toast(message, kind = "info", seconds = 5) {
  const region = document.getElementById("toasts");
  const item = h("div", { class: ["toast", kind] }, message);
  region.append(item);
  setTimeout(() => item.remove(), seconds * 1000);
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function ago(iso) {
  if (!iso) return "";
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size || unit === "second") return relative.format(Math.round(seconds / size), unit);
  }
  return "";
}

export function when(iso) {
  return iso ? absolute.format(new Date(iso)) : "";
}

/** A <time> that reads "3 minutes ago" and tells the exact moment on hover. */
export function timeAgo(iso) {
  return h("time", { datetime: iso, title: when(iso) }, ago(iso));
}

export function count(n) {
  return typeof n === "number" ? n.toLocaleString() : "–";
}

export function duration(ms) {
  if (typeof ms !== "number") return "";
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function plural(n, word, many = word + "s") {
  return `${count(n)} ${n === 1 ? word : many}`;
}

/** The page's route as a link target: every part is escaped. */
export function href(...parts) {
  return "#/" + parts.map((part) => encodeURIComponent(part)).join("/");
}
