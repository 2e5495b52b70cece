/* Swipe mode: one item at a time; like / pass by button, arrow keys or a touch swipe.
   Items count as shown only once swiped: the queue is a peek at the feed, fetched again after
   every swipe, so "Up next" visibly follows the taste as it forms. */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const card = $("swipe-card");
  const img = $("s-img");
  const QUEUE = 7;
  let queue = [];
  let busy = false;
  let liked = 0;
  let passed = 0;

  function render() {
    const cur = queue[0];
    if (!cur) {
      card.classList.add("empty");
      delete card.dataset.id;
      $("s-title").textContent = "You have seen everything here. Check your liked items!";
      img.removeAttribute("src");
      img.alt = "";
      $("s-price").textContent = "";
      $("s-brand").textContent = "";
      $("s-tags").textContent = "";
      $("upnext").textContent = "";
      return;
    }
    const item = cur.item;
    card.classList.remove("empty");
    card.dataset.id = item.id;
    card.dataset.category = LA.attr(item, "category") || "";
    img.src = item.image_url;
    img.alt = item.title || "Item photo";
    $("s-title").textContent = item.title || "Untitled item";
    $("s-price").textContent = LA.money(item.price, item.currency);
    $("s-brand").textContent = item.brand || "";
    LA.fillTags($("s-tags"), item);
    const list = $("upnext");
    list.textContent = "";
    for (const { item: it } of queue.slice(1)) {
      const li = document.createElement("li");
      li.dataset.id = it.id;
      li.dataset.category = LA.attr(it, "category") || "";
      const im = document.createElement("img");
      im.src = it.image_url;
      im.alt = it.title || "";
      im.loading = "lazy";
      const cap = document.createElement("span");
      cap.textContent = LA.attr(it, "category") || it.title || "";
      li.append(im, cap);
      list.appendChild(li);
    }
    // Warm the cache for the next photo so the swap is instant.
    if (queue[1]) { const pre = new Image(); pre.src = queue[1].item.image_url; }
  }

  async function refill() {
    const data = await LA.api(`/me/feed?n=${QUEUE}&peek=true`);
    queue = data.items;
    render();
  }

  async function decide(like) {
    if (busy || !queue[0]) return;
    busy = true;
    const item = queue[0].item;
    card.classList.add(like ? "go-right" : "go-left");
    try {
      await LA.api("/me/swipes", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ item_id: item.id, liked: like }),
      });
      if (like) liked += 1; else passed += 1;
      $("counts").textContent = `${liked} liked · ${passed} passed`;
      await refill();
    } catch (err) {
      LA.toast(err.message, "error");
    } finally {
      // The next card appears in place at once (no fly-back), with a short entrance.
      card.classList.add("dragging");
      card.classList.remove("go-right", "go-left", "drag-like", "drag-nope", "enter");
      card.style.transform = "";
      void card.offsetWidth;
      card.classList.remove("dragging");
      card.classList.add("enter");
      busy = false;
    }
  }

  $("btn-like").addEventListener("click", () => decide(true));
  $("btn-nope").addEventListener("click", () => decide(false));
  document.addEventListener("keydown", (e) => {
    if (e.target.closest && e.target.closest("input, select, textarea")) return;
    if (e.key === "ArrowRight") { e.preventDefault(); decide(true); }
    else if (e.key === "ArrowLeft") { e.preventDefault(); decide(false); }
  });

  // Touch / pen / mouse drag.
  let startX = null;
  let dx = 0;
  card.addEventListener("pointerdown", (e) => {
    if (busy) return;
    startX = e.clientX;
    dx = 0;
    card.setPointerCapture(e.pointerId);
    card.classList.add("dragging");
  });
  card.addEventListener("pointermove", (e) => {
    if (startX === null) return;
    dx = e.clientX - startX;
    card.style.transform = `translateX(${dx}px) rotate(${dx / 20}deg)`;
    card.classList.toggle("drag-like", dx > 40);
    card.classList.toggle("drag-nope", dx < -40);
  });
  const end = () => {
    if (startX === null) return;
    startX = null;
    card.classList.remove("dragging");
    const threshold = Math.min(120, card.offsetWidth / 4);
    if (dx > threshold) decide(true);
    else if (dx < -threshold) decide(false);
    else { card.style.transform = ""; card.classList.remove("drag-like", "drag-nope"); }
  };
  card.addEventListener("pointerup", end);
  card.addEventListener("pointercancel", end);
  img.addEventListener("dragstart", (e) => e.preventDefault());

  refill().catch((err) => LA.toast(err.message, "error"));
})();
