// Small DOM helpers shared by the panels.

export const $ = (id) => document.getElementById(id);

/** An element with text (or children). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

/** Prepends a line to a log list, keeping at most `max` lines. */
export function logLine(list, max, ...children) {
  const li = el("li", {}, ...children);
  list.prepend(li);
  while (list.children.length > max) list.lastElementChild.remove();
  return li;
}

/** An error as a person reads it: the code's name, its message, and typed details. */
export function errorBox(err, details = []) {
  const box = el("div", { className: "error", role: "alert" });
  const code = err.codeName ?? err.code ?? "error";
  box.append(el("b", {}, String(code)), ` ${err.rawMessage ?? err.message ?? String(err)}`);
  for (const [title, fields] of details) {
    const dl = el("dl");
    for (const [k, v] of Object.entries(fields)) dl.append(el("dt", {}, k), el("dd", {}, String(v)));
    box.append(el("div", { className: "detail" }, title, dl));
  }
  return box;
}

/** A JSON value on one line. */
export const json = (v) => (v === undefined ? "" : JSON.stringify(v));
