/* Liked page: un-like an item; create an account (adopting this guest's swipes), sign in,
   sign out. */
"use strict";

(() => {
  // Un-like: the item's swipe becomes a pass (POST /me/swipes, as on the swipe page), so it
  // leaves the likes and the feed learns from it.
  const liked = document.getElementById("liked");
  const count = () => {
    const n = liked.querySelectorAll(".card").length;
    document.getElementById("liked-count").textContent = `${n} item${n === 1 ? "" : "s"}`;
    document.getElementById("start-swiping").hidden = n > 0;
  };
  liked.addEventListener("click", async (ev) => {
    const button = ev.target.closest('[data-act="unlike"]');
    if (!button) return;
    const card = button.closest(".card");
    button.disabled = true;
    try {
      await LA.api("/me/swipes", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ item_id: card.dataset.id, liked: false }),
      });
      card.remove();
      count();
      LA.toast("Removed from your likes");
    } catch (err) {
      button.disabled = false;
      LA.toast(err.message, "error");
    }
  });

  const form = document.getElementById("account-form");
  if (form) {
    let action = "register";
    form.querySelectorAll("button[data-action]").forEach((b) =>
      b.addEventListener("click", () => { action = b.dataset.action; }));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const msg = form.querySelector(".form-msg");
      const body = JSON.stringify({
        username: form.username.value.trim(), password: form.password.value,
      });
      try {
        await LA.api(action === "register" ? "/accounts" : "/sessions", {
          method: "POST", headers: { "Content-Type": "application/json" }, body,
        });
        location.reload();
      } catch (err) {
        msg.textContent = err.message;
      }
    });
  }
  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      await LA.api("/sessions/current", { method: "DELETE" });
      location.reload();
    });
  }
})();
