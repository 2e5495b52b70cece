/* Liked page: create an account (adopting this guest's swipes), sign in, sign out. */
"use strict";

(() => {
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
