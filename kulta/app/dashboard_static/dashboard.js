// KULTA dashboard: refresh main every few seconds; send a button's command as a POST
"use strict";
(function () {
  const meta = (name) => document.querySelector('meta[name="' + name + '"]').content;
  const token = meta("kulta-token");
  const every = Number(meta("kulta-refresh")) * 1000;
  const notice = document.getElementById("notice");
  async function refresh() {
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    try {
      const answer = await fetch(url, { headers: { "X-Kulta-Token": token }, cache: "no-store" });
      if (answer.ok) {
        document.getElementById("main").innerHTML = await answer.text();
        document.getElementById("refreshed").textContent = "updated " + new Date().toLocaleTimeString();
      }
    } catch (e) {
      document.getElementById("refreshed").textContent = "dashboard unreachable";
    }
  }
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-command]");
    if (!button || button.disabled) return;
    const box = button.closest("[data-action]");
    button.disabled = true;
    const answer = await fetch(box.dataset.action + "/" + button.dataset.command, {
      method: "POST", headers: { "X-Kulta-Token": token }, cache: "no-store" });
    const type = answer.headers.get("Content-Type") || "";
    notice.textContent = type.startsWith("application/json") ? (await answer.json()).message : await answer.text();
    notice.className = answer.ok ? "ok" : "error";
    await refresh();
  });
  window.setInterval(refresh, every);
})();
