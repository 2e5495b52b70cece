/* Shared helpers for the lookalike page: JSON fetch with clear errors, toasts, item cards. */
"use strict";

const LA = (() => {
  async function api(path, options = {}) {
    const res = await fetch(path, { credentials: "same-origin", ...options });
    if (res.status === 204) return null;
    let data = null;
    try { data = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) {
      const msg = (data && data.detail) || `${res.status} ${res.statusText}`;
      const err = new Error(msg);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  let toastTimer = null;
  function toast(message, kind = "info") {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;
    el.dataset.kind = kind;
    el.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => el.classList.remove("show"), 4000);
  }

  const COLOURS = {
    black: "#111", white: "#fff", grey: "#8a8a8a", gray: "#8a8a8a", red: "#d32f2f",
    blue: "#1e63c6", navy: "#1b2a55", green: "#2e7d32", yellow: "#f2c200", orange: "#ef6c00",
    pink: "#e979a8", purple: "#7b3fa0", brown: "#7a4a26", beige: "#d9c6a5", cream: "#f3ead5",
    khaki: "#a39a6a", teal: "#14857f", olive: "#6b6b2a", maroon: "#6d1a2b", gold: "#c9a227",
    silver: "#c0c0c0", turquoise: "#2bb6b0", multicolour: "conic-gradient(red, yellow, lime, aqua, blue, magenta, red)",
  };
  function swatch(colour) {
    const s = document.createElement("span");
    s.className = "swatch";
    s.setAttribute("aria-hidden", "true");
    const c = COLOURS[String(colour).toLowerCase()];
    if (c) s.style.background = c;
    return s;
  }

  function money(price, currency) {
    if (price === null || price === undefined) return "";
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "EUR" }).format(price);
    } catch (_) {
      return `${price.toFixed(2)} ${currency || ""}`;
    }
  }

  function attr(item, name) {
    if (item[name]) return item[name];
    const t = item.predicted && item.predicted[name];
    return t ? t.value : null;
  }

  function fillTags(ul, item) {
    ul.textContent = "";
    const add = (text, title, colour) => {
      const li = document.createElement("li");
      if (colour) { li.className = "colour"; li.appendChild(swatch(colour)); }
      li.appendChild(document.createTextNode(text));
      if (title) li.title = title;
      ul.appendChild(li);
    };
    const cat = attr(item, "category");
    if (cat) add(cat, item.category ? "" : "predicted category");
    const col = attr(item, "colour");
    if (col) add(col, item.colour ? "colour" : "predicted colour", col);
    if (item.second_hand) add("second-hand");
    if (item.kids) add("kids");
    if (item.sustainability !== null && item.sustainability !== undefined) {
      add(`eco ${item.sustainability.toFixed(1)}`, "Sustainability, 0 (worst) to 5 (best)");
    }
    if (item.rating !== null && item.rating !== undefined) {
      const reviews = item.reviews === null || item.reviews === undefined ? "" : ` (${item.reviews})`;
      add(`★ ${item.rating.toFixed(1)}${reviews}`, "Shoppers' rating, 0 to 5 (number of reviews)");
    }
  }

  // "≈ €10.00": the price in the base currency, where the item is priced in another one
  function converted(item) {
    if (item.base_price === null || item.base_price === undefined || !item.currency
        || item.currency === item.base_currency) return "";
    return `≈ ${money(item.base_price, item.base_currency)}`;
  }

  // "Brand rating 4.5/5 · <source>, 2024-05-01" (the source a link where it has one)
  function fillBrandRating(p, item) {
    p.textContent = "";
    const r = item.brand_rating;
    p.hidden = !r;
    if (!r) return;
    const num = (x) => String(Number(x.toFixed(1)));
    const aspects = [["people", r.people], ["planet", r.planet], ["animals", r.animals]]
      .filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => `${k} ${num(v)}`);
    p.title = `Brand sustainability ${num(r.overall)} of 5${aspects.length ? ": " + aspects.join(", ") : ""}`;
    p.append("Brand rating ");
    const strong = document.createElement("strong");
    strong.textContent = `${num(r.overall)}/5`;
    p.append(strong, " · ");
    if (r.url) {
      const a = document.createElement("a");
      a.href = r.url;
      a.target = "_blank";
      a.rel = "noopener";
      a.textContent = r.source;
      p.append(a);
    } else {
      p.append(r.source);
    }
    if (r.rated_on) p.append(`, ${r.rated_on}`);
  }

  // a badge on the photo for a listing that is not simply available
  function fillState(span, item) {
    const state = item.state || "available";
    span.hidden = state === "available";
    span.textContent = state === "available" ? "" : state;
    span.className = `state ${state}`;
  }

  // Colour swatches in server-rendered cards.
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".swatch[data-colour]").forEach((s) => {
      const c = COLOURS[s.dataset.colour.toLowerCase()];
      if (c) s.style.background = c;
    });
  });

  return { api, toast, swatch, money, attr, fillTags, converted, fillBrandRating, fillState };
})();
