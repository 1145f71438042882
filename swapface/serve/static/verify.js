// The verify page: send one file to /api/verify and show the verdict with each piece of evidence.
"use strict";

function manifestText(m) {
  if (!m.present) return "none";
  const state = m.valid ? "valid" : "INVALID: the file changed after signing, or the manifest is damaged";
  const parts = [state, `signer ${m.signer || "?"} (${m.issuer || "?"})`, m.trusted ? "trusted" : "not on a trust list"];
  if (m.actions.length) parts.push(`actions ${m.actions.join(", ")}`);
  if (m.source_type) parts.push(`source type ${m.source_type.split("/").pop()}`);
  if (m.failures.length) parts.push(`failures ${m.failures.join(", ")}`);
  return parts.join("; ");
}

function watermarkText(w) {
  const verdict = w.found ? "found" : "not found";
  return `${verdict} (z = ${w.z.toFixed(1)}; chance if unmarked at most ${w.p_value.toPrecision(1)}; ${w.faces} faces in ${w.frames} frames)`;
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("verify-form");
  const busy = document.getElementById("verify-busy"), error = document.getElementById("verify-error");
  const section = document.getElementById("verdict");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = form.elements.file.files[0];
    if (!file) return;
    const body = new FormData();
    body.append("file", file);
    body.append("key", form.elements.key.value.trim());
    error.textContent = ""; section.hidden = true; busy.hidden = false;
    form.querySelector("button").disabled = true;
    try {
      const v = await api("POST", "/api/verify", body);
      document.getElementById("verdict-summary").textContent = `${v.path}: ${v.summary}`;
      section.classList.toggle("found", v.swapface);
      document.getElementById("ev-manifest").textContent = manifestText(v.manifest);
      document.getElementById("ev-tag").textContent = v.tag ? `${v.tag}${v.credentials_tag ? ` (credentials: ${v.credentials_tag})` : ""}` : "none";
      document.getElementById("ev-watermark").textContent = watermarkText(v.watermark);
      section.hidden = false;
    } catch (e) { error.textContent = e.message; }
    finally { busy.hidden = true; form.querySelector("button").disabled = false; }
  });
});
