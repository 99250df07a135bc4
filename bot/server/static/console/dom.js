/* Small DOM helpers shared by the console pages (console.js, analytics.js).
 * Text always goes in through textContent: customer and agent text is never parsed as HTML. */
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
