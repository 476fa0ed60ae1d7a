// The entity-relationship diagram of one schema, as SVG.
//
// A layered layout (Sugiyama's): referenced tables to the left of the tables that
// reference them, long edges split by waypoints that hold their own place in each layer
// they cross, layers ordered by barycentres to cut crossings, and each layer's boxes
// placed as near as their order allows to where their neighbours want them (isotonic
// regression). Edges run only through the gaps between layers or along their waypoints,
// so none crosses a box; boxes of one layer are stacked, so none overlaps another.

import { h, href, s } from "./dom.js";

const ROW = 20;
const HEADER = 28;
const PAD = 10;
const LAYER_GAP = 96;
const BOX_GAP = 22;
const WAYPOINT = 8;
// Room for a self-reference's loop beside a box that has no other key.
const LOOSE_GAP = 56;
const MAX_ROWS = 14;
const READABLE_SCALE = 0.75;
const FONT = "12px ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace";

let measurer = null;
function textWidth(text, bold = false) {
  measurer = measurer || document.createElement("canvas").getContext("2d");
  measurer.font = bold ? `600 ${FONT}` : FONT;
  return measurer.measureText(text).width;
}

/** The columns a box shows: keys first, then the rest in order, up to MAX_ROWS. */
function shownColumns(table) {
  const columns = [...table.columns].sort((a, b) => a.ordinal - b.ordinal);
  if (columns.length <= MAX_ROWS) return { rows: columns, hidden: 0 };
  const keys = columns.filter((c) => c.primary_key || c.references);
  const others = columns.filter((c) => !c.primary_key && !c.references);
  const rows = [...keys, ...others].slice(0, MAX_ROWS - 1).sort((a, b) => a.ordinal - b.ordinal);
  return { rows, hidden: columns.length - rows.length };
}

function buildNodes(tables) {
  const nodes = new Map();
  for (const table of tables) {
    const { rows, hidden } = shownColumns(table);
    const width = Math.max(
      textWidth(table.name, true) + 2 * PAD + 24,
      ...rows.map((c) => textWidth(c.name) + textWidth(c.data_type) + 3 * PAD + 22),
      150);
    nodes.set(table.name, {
      id: table.name, table, rows, hidden, real: true,
      w: Math.ceil(Math.min(width, 360)),
      h: HEADER + (rows.length + (hidden ? 1 : 0)) * ROW + 6,
    });
  }
  return nodes;
}

function foreignKeys(tables, schema, nodes) {
  const edges = [];
  for (const table of tables) {
    for (const column of table.columns) {
      const ref = column.references;
      if (ref && ref.schema === schema && nodes.has(ref.table)) {
        edges.push({ child: table.name, column: column.name, parent: ref.table, target: ref.column });
      }
    }
  }
  return edges;
}

/** Layer of each table: one right of the furthest table it references (cycles broken). */
function assignLayers(nodes, edges) {
  const parents = new Map([...nodes.keys()].map((id) => [id, []]));
  const children = new Map([...nodes.keys()].map((id) => [id, []]));
  for (const e of edges) {
    if (e.child === e.parent) continue;
    parents.get(e.child).push(e.parent);
    children.get(e.parent).push(e.child);
  }
  const layer = new Map();
  const visiting = new Set();
  const depth = (id) => {
    if (layer.has(id)) return layer.get(id);
    if (visiting.has(id)) return -1; // a cycle: this edge does not push the layer.
    visiting.add(id);
    const value = 1 + Math.max(-1, ...parents.get(id).map(depth));
    visiting.delete(id);
    layer.set(id, value);
    return value;
  };
  [...nodes.keys()].sort().forEach(depth);
  // A referenced table that references nothing sits just left of its nearest child.
  for (const id of nodes.keys()) {
    const kids = children.get(id);
    if (parents.get(id).length === 0 && kids.length) layer.set(id, Math.max(0, Math.min(...kids.map((k) => layer.get(k))) - 1));
  }
  return layer;
}

/** Orders each layer to cut crossings: barycentre sweeps, keeping the best seen. */
function orderLayers(layers, links) {
  const position = new Map();
  const index = () => layers.forEach((layer) => layer.forEach((id, i) => position.set(id, i)));
  const crossings = () => {
    let total = 0;
    for (let l = 1; l < layers.length; l++) {
      const between = links.filter(([a, b]) => layers[l - 1].includes(a) && layers[l].includes(b));
      for (let i = 0; i < between.length; i++) {
        for (let j = i + 1; j < between.length; j++) {
          const [a1, b1] = between[i];
          const [a2, b2] = between[j];
          if ((position.get(a1) - position.get(a2)) * (position.get(b1) - position.get(b2)) < 0) total++;
        }
      }
    }
    return total;
  };
  const neighbours = new Map();
  for (const [a, b] of links) {
    if (!neighbours.has(a)) neighbours.set(a, []);
    if (!neighbours.has(b)) neighbours.set(b, []);
    neighbours.get(a).push(b);
    neighbours.get(b).push(a);
  }
  index();
  let best = layers.map((layer) => [...layer]);
  let bestCrossings = crossings();
  for (let sweep = 0; sweep < 16 && bestCrossings > 0; sweep++) {
    const down = sweep % 2 === 0;
    const range = down ? [...layers.keys()].slice(1) : [...layers.keys()].reverse().slice(1);
    for (const l of range) {
      const other = down ? l - 1 : l + 1;
      const barycentre = (id) => {
        const near = (neighbours.get(id) || []).filter((n) => layers[other].includes(n));
        return near.length ? near.reduce((sum, n) => sum + position.get(n), 0) / near.length : position.get(id);
      };
      const scored = layers[l].map((id) => [barycentre(id), position.get(id), id]);
      scored.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
      layers[l] = scored.map((item) => item[2]);
      index();
    }
    const now = crossings();
    if (now < bestCrossings) {
      bestCrossings = now;
      best = layers.map((layer) => [...layer]);
    }
  }
  layers.splice(0, layers.length, ...best);
  index();
  return bestCrossings;
}

/**
 * Tops for boxes of heights `heights`, in this order, at least `gap` apart, as near to
 * `wanted` as that allows (least squares): pool-adjacent-violators on block means.
 */
function placeInOrder(wanted, heights, gap) {
  const blocks = [];
  for (let i = 0; i < wanted.length; i++) {
    let block = { first: i, last: i, sum: wanted[i], n: 1, span: heights[i] };
    // offset of box k inside a block = sum of heights and gaps of the boxes before it.
    block.top = wanted[i];
    while (blocks.length) {
      const prev = blocks[blocks.length - 1];
      if (prev.top + prev.span + gap <= block.top) break;
      blocks.pop();
      const offset = prev.span + gap;
      const merged = {
        first: prev.first, last: block.last, n: prev.n + block.n,
        sum: prev.sum + (block.sum - offset * block.n),
        span: prev.span + gap + block.span,
      };
      merged.top = merged.sum / merged.n;
      block = merged;
    }
    blocks.push(block);
  }
  const tops = new Array(wanted.length);
  for (const block of blocks) {
    let y = block.top;
    for (let k = block.first; k <= block.last; k++) {
      tops[k] = y;
      y += heights[k] + gap;
    }
  }
  return tops;
}

function portY(node, column) {
  if (!node.real) return node.y + node.h / 2;
  const row = node.rows.findIndex((c) => c.name === column);
  return node.y + (row < 0 ? HEADER / 2 : HEADER + row * ROW + ROW / 2);
}

export function layout(tables, schema) {
  const nodes = buildNodes(tables);
  const edges = foreignKeys(tables, schema, nodes);
  const connected = new Set(edges.filter((e) => e.child !== e.parent).flatMap((e) => [e.child, e.parent]));
  const layerOf = assignLayers(nodes, edges);
  const layered = [...nodes.values()].filter((n) => connected.has(n.id));
  const loose = [...nodes.values()].filter((n) => !connected.has(n.id)).sort((a, b) => a.id.localeCompare(b.id));

  const count = layered.length ? Math.max(...layered.map((n) => layerOf.get(n.id))) + 1 : 0;
  const layers = Array.from({ length: count }, () => []);
  layered.sort((a, b) => a.id.localeCompare(b.id)).forEach((n) => layers[layerOf.get(n.id)].push(n.id));

  // Each edge becomes links between adjacent layers, through waypoints where it is long.
  const links = [];
  for (const [i, e] of edges.entries()) {
    if (e.child === e.parent) continue;
    let from = e.parent;
    let lp = layerOf.get(e.parent);
    let lc = layerOf.get(e.child);
    if (lc < lp) [lp, lc] = [lc, lp], (from = e.child); // a cycle's back edge runs the other way.
    const to = from === e.parent ? e.child : e.parent;
    e.waypoints = [];
    for (let l = lp + 1; l < lc; l++) {
      const id = `~${i}:${l}`;
      nodes.set(id, { id, real: false, w: 0, h: WAYPOINT });
      layers[l].push(id);
      links.push([from, id]);
      e.waypoints.push(id);
      from = id;
    }
    links.push([from, to]);
    e.leftToRight = to === e.child;
  }
  const crossings = orderLayers(layers, links);

  // Columns of layers, left to right.
  let x = 0;
  const layerX = [];
  const layerW = [];
  for (const layer of layers) {
    const width = Math.max(0, ...layer.map((id) => nodes.get(id).w));
    layerX.push(x);
    layerW.push(width);
    x += width + LAYER_GAP;
  }
  for (const [l, layer] of layers.entries()) layer.forEach((id) => { const n = nodes.get(id); n.x = layerX[l]; n.layer = l; });

  // First stack each layer, then pull boxes toward their neighbours, a few passes each way.
  for (const layer of layers) {
    let y = 0;
    for (const id of layer) { const n = nodes.get(id); n.y = y; y += n.h + BOX_GAP; }
  }
  const attach = new Map();
  const addAttach = (a, b, ay, by) => {
    if (!attach.has(a)) attach.set(a, []);
    attach.get(a).push({ other: b, self: ay, theirs: by });
  };
  for (const e of edges) {
    if (e.child === e.parent) continue;
    const chain = e.leftToRight ? [e.parent, ...e.waypoints, e.child] : [e.child, ...e.waypoints, e.parent];
    for (let k = 0; k + 1 < chain.length; k++) {
      const a = chain[k], b = chain[k + 1];
      const aCol = a === e.parent ? e.target : a === e.child ? e.column : null;
      const bCol = b === e.parent ? e.target : b === e.child ? e.column : null;
      addAttach(a, b, aCol, bCol);
      addAttach(b, a, bCol, aCol);
    }
  }
  const offset = (node, column) => portY(node, column) - node.y;
  for (let pass = 0; pass < 8; pass++) {
    const order = pass % 2 === 0 ? [...layers.keys()] : [...layers.keys()].reverse();
    for (const l of order) {
      const ids = layers[l];
      const wanted = ids.map((id) => {
        const n = nodes.get(id);
        const near = attach.get(id) || [];
        if (!near.length) return n.y;
        const sum = near.reduce((acc, a) => {
          const other = nodes.get(a.other);
          return acc + (other.y + offset(other, a.theirs)) - offset(n, a.self);
        }, 0);
        return sum / near.length;
      });
      const tops = placeInOrder(wanted, ids.map((id) => nodes.get(id).h), BOX_GAP);
      ids.forEach((id, k) => (nodes.get(id).y = tops[k]));
    }
  }
  const placed = [...nodes.values()].filter((n) => n.layer !== undefined);
  const minY = Math.min(0, ...placed.map((n) => n.y));
  placed.forEach((n) => (n.y -= minY));
  let height = Math.max(0, ...placed.map((n) => n.y + n.h));
  let width = Math.max(0, x - LAYER_GAP);

  // Tables without keys to others go in rows below.
  if (loose.length) {
    let rowX = 0;
    let rowY = layered.length ? height + 2 * BOX_GAP + 20 : 0;
    let rowH = 0;
    const limit = Math.max(width, 760);
    for (const n of loose) {
      if (rowX > 0 && rowX + n.w > limit) { rowX = 0; rowY += rowH + BOX_GAP; rowH = 0; }
      n.x = rowX; n.y = rowY;
      rowX += n.w + LOOSE_GAP;
      rowH = Math.max(rowH, n.h);
      width = Math.max(width, n.x + n.w);
    }
    height = rowY + rowH;
  }

  // Edge paths: child's key row → parent's referenced row, through the waypoints.
  for (const e of edges) {
    const child = nodes.get(e.child);
    const parent = nodes.get(e.parent);
    if (e.child === e.parent) {
      const x0 = child.x + child.w;
      const y0 = portY(child, e.column);
      const y1 = portY(child, e.target);
      e.path = `M${x0},${y0} C${x0 + 40},${y0} ${x0 + 40},${y1} ${x0 + 6},${y1}`;
      continue;
    }
    // Left to right: waypoints were made in that order, whichever way the key points.
    const via = e.waypoints.map((id) => nodes.get(id));
    const chain = e.leftToRight ? [parent, ...via, child] : [child, ...via, parent];
    e.startsAtParent = e.leftToRight;
    const points = [];
    for (const [k, n] of chain.entries()) {
      const y = n === parent ? portY(n, e.target) : n === child ? portY(n, e.column) : n.y + n.h / 2;
      const left = n.real ? n.x : layerX[n.layer];
      const right = n.real ? n.x + n.w : layerX[n.layer] + layerW[n.layer];
      const layerRight = layerX[n.layer] + layerW[n.layer];
      if (k > 0) points.push(["in", left, y]);
      if (k < chain.length - 1) points.push(["out", right, y], ["out", layerRight, y]);
    }
    let d = "";
    for (let k = 0; k < points.length; k++) {
      const [kind, px, py] = points[k];
      if (k === 0) d += `M${px},${py}`;
      else if (kind === "out" && points[k - 1][0] === "out") d += ` L${px},${py}`;
      else if (kind === "in") {
        const [, qx, qy] = points[k - 1];
        const bend = (px - qx) / 2;
        d += ` C${qx + bend},${qy} ${px - bend},${py} ${px},${py}`;
      } else d += ` L${px},${py}`;
    }
    e.path = d;
  }
  return { nodes: [...nodes.values()].filter((n) => n.real), edges, width, height, crossings };
}

export function erDiagram(ds, schema, tables) {
  if (!tables.length) return h("p", { class: "muted" }, "This schema has no tables.");
  const { nodes, edges, width, height } = layout(tables, schema);
  const margin = 16;
  const fullW = width + 2 * margin + 40;
  const fullH = height + 2 * margin;
  const fks = edges.length;
  const svg = s("svg", {
    class: "erd", role: "group", viewBox: `${-margin} ${-margin} ${fullW} ${fullH}`,
    width: fullW, height: fullH,
    "aria-label": `Diagram of ${ds}.${schema}: ${tables.length} tables, ${fks} foreign keys`,
  });
  svg.append(s("defs", {},
    s("marker", { id: "erd-one", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "9", markerHeight: "9", markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" },
      s("path", { d: "M0,0 L10,5 L0,10 z", class: "erd-arrow" })),
    s("marker", { id: "erd-many", viewBox: "0 0 10 10", refX: "5", refY: "5", markerWidth: "8", markerHeight: "8", markerUnits: "userSpaceOnUse" },
      s("circle", { cx: "5", cy: "5", r: "3.5", class: "erd-dot" }))));

  const edgeLayer = s("g", { class: "erd-edges" });
  for (const e of edges) {
    const title = `${e.child}.${e.column} → ${e.parent}.${e.target}`;
    edgeLayer.append(s("path", {
      d: e.path, class: "erd-edge", "data-from": e.child, "data-to": e.parent,
      // The arrow points at the referenced key, whichever end the path starts from.
      "marker-start": e.startsAtParent ? "url(#erd-one)" : "url(#erd-many)",
      "marker-end": e.startsAtParent ? "url(#erd-many)" : "url(#erd-one)",
    }, s("title", {}, title)));
  }
  svg.append(edgeLayer);

  const boxes = s("g", { class: "erd-tables" });
  for (const n of nodes) {
    const link = s("a", {
      href: href("catalog", ds, schema, n.id), class: "erd-table", "data-table": n.id,
      transform: `translate(${n.x},${n.y})`,
    });
    link.append(
      s("rect", { class: "erd-box", width: n.w, height: n.h, rx: 6 }),
      s("path", { class: "erd-head", d: `M0,${HEADER} V6 a6,6 0 0 1 6,-6 H${n.w - 6} a6,6 0 0 1 6,6 V${HEADER} Z` }),
      s("text", { class: "erd-name", x: PAD, y: HEADER / 2 + 4 }, n.id));
    n.rows.forEach((c, i) => {
      const y = HEADER + i * ROW + ROW / 2 + 4;
      const mark = c.primary_key ? "PK" : c.references ? "FK" : "";
      link.append(
        mark ? s("text", { class: `erd-mark ${c.primary_key ? "pk" : "fk"}`, x: PAD, y }, mark) : null,
        s("text", { class: "erd-column", x: PAD + 22, y }, c.name),
        s("text", { class: "erd-type", x: n.w - PAD, y, "text-anchor": "end" }, c.data_type.toLowerCase()));
    });
    if (n.hidden) {
      link.append(s("text", { class: "erd-more", x: PAD + 22, y: HEADER + n.rows.length * ROW + ROW / 2 + 4 }, `+ ${n.hidden} more`));
    }
    const highlight = (on) => edgeLayer.querySelectorAll(`[data-from="${CSS.escape(n.id)}"], [data-to="${CSS.escape(n.id)}"]`)
      .forEach((path) => path.classList.toggle("active", on));
    for (const [event, on] of [["mouseenter", true], ["mouseleave", false], ["focus", true], ["blur", false]]) {
      link.addEventListener(event, () => highlight(on));
    }
    boxes.append(link);
  }
  svg.append(boxes);

  const frame = h("div", { class: "erd-frame", tabindex: "0", role: "region", "aria-label": "Diagram, scrollable" }, svg);
  let scale = 1;
  const zoom = (next) => {
    scale = Math.min(2.5, Math.max(0.2, next));
    svg.setAttribute("width", String(Math.round(fullW * scale)));
    svg.setAttribute("height", String(Math.round(fullH * scale)));
    level.textContent = `${Math.round(scale * 100)}%`;
  };
  const fit = () => zoom(Math.min(1, (frame.clientWidth - 8) / fullW));
  const level = h("span", { class: "muted small zoom-level", "aria-live": "polite" }, "100%");
  const tools = h("div", { class: "row erd-tools" },
    h("button", { type: "button", "aria-label": "Zoom out", on: { click: () => zoom(scale / 1.25) } }, "−"),
    level,
    h("button", { type: "button", "aria-label": "Zoom in", on: { click: () => zoom(scale * 1.25) } }, "+"),
    h("button", { type: "button", on: { click: () => zoom(1) } }, "Actual size"),
    h("button", { type: "button", on: { click: fit } }, "Fit"),
    h("span", { class: "muted small" }, `${tables.length} tables · ${fks} foreign keys · arrows point at the referenced key`));
  // Fit once the frame has a width (it is attached after this returns), but never so
  // small that names cannot be read: a large schema scrolls instead.
  requestAnimationFrame(() => {
    if (frame.clientWidth && frame.clientWidth < fullW) zoom(Math.max(READABLE_SCALE, (frame.clientWidth - 8) / fullW));
  });
  return h("div", { class: "erd-wrap" }, tools, frame);
}
