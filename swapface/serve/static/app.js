// Shared by every page: calling the API with the session cookie, sign-in, sign-out, new projects.
"use strict";

async function api(method, path, body, extra = {}) {
  const headers = { "X-Swapface": "1", ...(extra.headers || {}) };
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (response.status === 401 && location.pathname !== "/login") { location.href = "/login"; }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const detail = data && data.detail;
    const text = Array.isArray(detail) ? detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ") : detail;
    const error = new Error(text || `${response.status} ${response.statusText}`);
    error.status = response.status; error.data = data; error.headers = response.headers;
    throw error;
  }
  return data;
}

document.addEventListener("DOMContentLoaded", () => {
  const signOut = document.getElementById("sign-out");
  if (signOut) signOut.addEventListener("click", async () => { await api("DELETE", "/api/session"); location.href = "/login"; });

  const login = document.getElementById("login");
  if (login) {
    const input = document.getElementById("token");
    const send = async () => {
      try {
        await api("POST", "/api/session", { token: input.value.trim() });
        location.href = "/";
      } catch (error) { document.getElementById("login-error").textContent = error.message; }
    };
    login.addEventListener("submit", (event) => { event.preventDefault(); send(); });
    const match = location.hash.match(/token=([^&]+)/);  // the link `swapface serve` prints
    if (match) { input.value = decodeURIComponent(match[1]); history.replaceState(null, "", "/login"); send(); }
  }

  const create = document.getElementById("new-project");
  if (create) {
    create.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const project = await api("POST", "/api/projects", { name: create.elements.name.value });
        location.href = `/projects/${project.id}`;
      } catch (error) { create.querySelector(".error").textContent = error.message; }
    });
  }
});
